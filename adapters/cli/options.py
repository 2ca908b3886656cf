"""Options and output helpers every `loadstar` command group shares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.cli.lifecycle import say
from csms.clock import parse_iso

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="config.toml to use")]
UrlOpt = Annotated[str | None, typer.Option(
    "--url", help="the running server's HTTP API (default: from the config's [http])")]
KeyOpt = Annotated[str | None, typer.Option(
    "--api-key", envvar="LOADSTAR_API_KEY", help="an API key with the write scope")]


def jsonable(value: Any) -> Any:
    """`value` with its datetimes as ISO 8601 text, ready for json.dumps."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def instant(text: str | None) -> datetime | None:
    """An ISO 8601 instant from an option; exit 2 when it does not read."""
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        say(f"not an ISO 8601 date-time: {text}")
        raise typer.Exit(2) from None


def component_variable(text: str) -> tuple[str, str]:
    """`Component.Variable` (a dot inside [instance] does not split)."""
    depth, cut = 0, -1
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "." and depth == 0:
            cut = i
            break
    if cut <= 0 or cut == len(text) - 1:
        say(f"not Component.Variable: {text}")
        raise typer.Exit(2)
    return text[:cut], text[cut + 1:]
