"""`loadstar reserve`, `cancel-reservation`, `reservations` and `local-list ...`: the typed
helpers run here against the store, their CALLs go through the running server's HTTP relay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from adapters.cli.lifecycle import say
from adapters.cli.options import (
    ConfigOpt,
    KeyOpt,
    UrlOpt,
    instant,
    jsonable,
)
from adapters.cli.relay_channel import RelayChannel, RelayRefused, relay_client
from csms.clock import SystemClock
from csms.config import Config
from csms.local_lists import LocalLists
from csms.reservations import NoSuchReservation, Reservations
from csms.store import Store

T = TypeVar("T")

local_list = typer.Typer(help="Local authorization lists kept in step with the id tags.",
                         no_args_is_help=True)




def _print(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2))


def run_with_relay(config: Config, url: str | None, api_key: str | None,
                   fn: Callable[[Store, RelayChannel], Awaitable[T]],
                   with_store: Callable[[Config, Any], Any]) -> T:
    """Open the store and an HTTP client to the server, run `fn`; exit 1 when refused."""
    if not api_key:
        say("an API key with the write scope is needed: --api-key or LOADSTAR_API_KEY")
        raise typer.Exit(2)
    base = url or f"http://{config.http.host}:{config.http.port}"

    async def main(store: Store) -> T:
        async with relay_client(base, api_key) as client:
            return await fn(store, RelayChannel(client, store))

    try:
        result: T = asyncio.run(with_store(config, main))
    except RelayRefused as exc:
        say(str(exc))
        raise typer.Exit(1) from None
    return result


def register(app: typer.Typer, config_of: Callable[[Path | None], Config],
             with_store: Callable[[Config, Any], Any]) -> None:
    """Add the verbs to `app` (the `loadstar` command)."""
    app.add_typer(local_list, name="local-list")

    @app.command()
    def reserve(cp_id: str, id_tag: Annotated[str, typer.Option("--id-tag")],
                connector: Annotated[int, typer.Option(
                    help="connector (1.6) / EVSE (2.0.1); 0: any")] = 0,
                until: Annotated[str | None, typer.Option(
                    help="expiry, ISO 8601 (default: --minutes from now)")] = None,
                minutes: Annotated[float, typer.Option(min=1)] = 30.0,
                config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Reserve a connector of a charger for an id tag (ReserveNow)."""
        expiry = instant(until) if until else datetime.now(UTC) + timedelta(minutes=minutes)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await Reservations(store, channel, SystemClock()).reserve(
                cp_id, connector or None, id_tag, expiry)

        record = run_with_relay(config_of(config), url, api_key, go, with_store)
        _print(asdict(record))
        if record.status != "reserved":
            raise typer.Exit(1)

    @app.command("cancel-reservation")
    def cancel_reservation(reservation_id: int, config: ConfigOpt = None, url: UrlOpt = None,
                           api_key: KeyOpt = None) -> None:
        """Cancel a reservation (CancelReservation)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            try:
                return await Reservations(store, channel, SystemClock()).cancel(reservation_id)
            except NoSuchReservation:
                return None

        record = run_with_relay(config_of(config), url, api_key, go, with_store)
        if record is None:
            say(f"no open reservation {reservation_id}")
            raise typer.Exit(1)
        _print(asdict(record))
        if record.status != "cancelled":
            raise typer.Exit(1)

    @app.command()
    def reservations(cp_id: Annotated[str | None, typer.Argument()] = None,
                     open_only: Annotated[bool, typer.Option("--open")] = False,
                     config: ConfigOpt = None) -> None:
        """List reservations (of one charger), newest first, as JSON."""
        async def go(store: Store) -> Any:
            return await store.list_reservations(cp_id, open_only)

        _print([asdict(r) for r in asyncio.run(with_store(config_of(config), go))])

    def lists(store: Store, channel: RelayChannel, config: Config) -> LocalLists:
        return LocalLists(store, channel, SystemClock(), config.ocpp.post_boot_concurrency)

    @local_list.command("sync")
    def sync(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
             api_key: KeyOpt = None) -> None:
        """Bring a charger's local list in line with the id tags (Differential or Full)."""
        cfg = config_of(config)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await lists(store, channel, cfg).sync(cp_id, refresh_limits=True)

        result = run_with_relay(cfg, url, api_key, go, with_store)
        _print(asdict(result))
        if not result.ok:
            raise typer.Exit(1)

    @local_list.command("version")
    def version(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
                api_key: KeyOpt = None) -> None:
        """Ask a charger its local list version (GetLocalListVersion)."""
        cfg = config_of(config)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return {"charger": await lists(store, channel, cfg).get_version(cp_id),
                    "ours": getattr(await store.local_list(cp_id), "version", None)}

        _print(run_with_relay(cfg, url, api_key, go, with_store))

    @local_list.command("clear-cache")
    def clear_cache(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
                    api_key: KeyOpt = None) -> None:
        """Clear a charger's authorization cache (ClearCache)."""
        cfg = config_of(config)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await lists(store, channel, cfg).clear_cache(cp_id)

        result = run_with_relay(cfg, url, api_key, go, with_store)
        _print({"status": result.status, "response": result.response, "error": result.error})
        if not result.ok:
            raise typer.Exit(1)

    @local_list.command("show")
    def show(cp_id: str, config: ConfigOpt = None) -> None:
        """What a charger's local list holds as far as we know (version, entries)."""
        async def go(store: Store) -> Any:
            record = await store.local_list(cp_id)
            return None if record is None else asdict(record)

        _print(asyncio.run(with_store(config_of(config), go)))


__all__ = ["register"]
