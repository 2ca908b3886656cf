"""`loadstar simulate`: a fleet of simulated chargers and EVs against a running CSMS.

The only part of the command that builds the simulators; they speak OCPP over a websocket like
any third-party charger and share no code with the CSMS.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from urllib.parse import urlsplit

import typer

from adapters.cli.lifecycle import say
from csms.logs import configure_logging
from csms.service import error_text
from simulators.fleet import format_summary, run_fleet


class Protocol(StrEnum):
    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
    MIXED = "mixed"


def ws_url(value: str) -> str:
    """Option callback: a ws:// or wss:// URL with a host and a valid port."""
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not a ws:// or wss:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        raise typer.BadParameter(f"{value!r}: {e}") from None
    return value


def positive(value: float) -> float:
    """Option callback: a number greater than 0."""
    if not value > 0:
        raise typer.BadParameter(f"must be greater than 0, got {value:g}")
    return value


async def _unreachable(url: str, timeout_s: float = 5.0) -> str | None:
    """Why no TCP connection opens to the URL's host and port; None when one does.

    Only TCP: a websocket handshake would show up at the CSMS as a charger."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as e:
        return error_text(e)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


def run(url: str, *, chargers: int, protocol: Protocol, connectors: int, duration_s: float,
        speed: float) -> int:
    """Run the fleet, print its summary; the exit code (1: cannot connect, or none booted)."""
    configure_logging("console", "warning")
    # Fail in seconds, not after the boot timeout, when nothing listens at the URL at all.
    why = asyncio.run(_unreachable(url))
    if why is not None:
        say(f"cannot connect to {url}: {why}")
        return 1
    summary = asyncio.run(run_fleet(url, chargers=chargers, protocol=protocol.value,
                                    connectors=connectors, duration_s=duration_s, speed=speed))
    typer.echo(format_summary(summary))
    if summary.booted == 0:
        say(f"no charger could boot at {url}")
        return 1
    return 0
