"""The physical quantities the views accept, bounded once for every view.

Strict numbers (no "30" for 30), finite, and within what any grid connection or charger could
be: a value past these bounds is a typing mistake, and left in it overflowed later arithmetic
(a network of 5e307 kW made every network list fail).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# 1 GW: far above any site's grid connection, far below where float arithmetic overflows.
MAX_KW = 1_000_000.0

Kw = Annotated[float, Field(strict=True, ge=0, le=MAX_KW, allow_inf_nan=False,
                            description="kW")]
PositiveKw = Annotated[float, Field(strict=True, gt=0, le=MAX_KW, allow_inf_nan=False,
                                    description="kW")]
