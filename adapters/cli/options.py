"""Options and output helpers every `loadstar` command group shares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

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
