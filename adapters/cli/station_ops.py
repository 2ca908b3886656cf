"""`loadstar firmware ...`, `logs ...`, `variables ...`, `transaction-status` and
`charging-profiles`: the typed helpers run here against the store, their CALLs go through the
running server's HTTP relay (as `reserve` and `local-list` do)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from adapters.cli.authlist import run_with_relay
from adapters.cli.lifecycle import say
from adapters.cli.options import (
    ConfigOpt,
    KeyOpt,
    UrlOpt,
    component_variable,
    instant,
    jsonable,
)
from adapters.cli.relay_channel import RelayChannel
from csms.clock import SystemClock
from csms.config import Config
from csms.helper_versions import UnknownCharger, WrongVersion
from csms.station_queries import StationQueries
from csms.store import Store
from csms.store.transfers import FIRMWARE, LOG, PUBLISH
from csms.transfers import Retries, Transfers
from csms.variable_split import NoAnswer, VariableRequests

T = TypeVar("T")

firmware = typer.Typer(help="Firmware updates and publications (UpdateFirmware, "
                            "SignedUpdateFirmware, PublishFirmware).", no_args_is_help=True)
logs = typer.Typer(help="Log uploads (GetDiagnostics, GetLog).", no_args_is_help=True)
variables = typer.Typer(help="2.0.1 variables, split to the station's message limits.",
                        no_args_is_help=True)

RetriesOpt = Annotated[int | None, typer.Option("--retries", min=0)]
IntervalOpt = Annotated[int | None, typer.Option("--retry-interval", min=0,
                                                 help="seconds between retries")]



def _print(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2))


def relayer(config_of: Callable[[Path | None], Config], with_store: Callable[[Config, Any], Any]
             ) -> Callable[..., Any]:
    """`relayed(config, url, api_key, fn)`: `run_with_relay` (exit 1 when the server refuses,
    2 without an API key), also exit 1 when the charger never connected or did not answer,
    2 for the wrong version or an argument the helper refuses (ValueError)."""

    def relayed(config: Path | None, url: str | None, api_key: str | None,
                fn: Callable[[Store, RelayChannel], Awaitable[T]]) -> T:
        try:
            return run_with_relay(config_of(config), url, api_key, fn, with_store)
        except NoAnswer as exc:
            say(str(exc))
            raise typer.Exit(1) from None
        except UnknownCharger as exc:
            say(f"no charger {exc} has connected yet")
            raise typer.Exit(1) from None
        except (WrongVersion, ValueError) as exc:
            say(str(exc))
            raise typer.Exit(2) from None

    return relayed


def register(app: typer.Typer, config_of: Callable[[Path | None], Config],
             with_store: Callable[[Config, Any], Any]) -> None:
    """Add the verbs to `app` (the `loadstar` command)."""
    app.add_typer(firmware, name="firmware")
    app.add_typer(logs, name="logs")
    app.add_typer(variables, name="variables")

    relayed = relayer(config_of, with_store)

    def stored(config: Path | None, fn: Callable[[Store], Awaitable[T]]) -> T:
        result: T = asyncio.run(with_store(config_of(config), fn))
        return result

    def transfer_out(record: Any) -> None:
        _print(asdict(record))
        if record.answer_status not in ("Accepted", "AcceptedCanceled"):
            raise typer.Exit(1)

    @firmware.command("update")
    def firmware_update(
            cp_id: str, location: str,
            at: Annotated[str | None, typer.Option(
                "--at", help="when to download, ISO 8601 (default: now)")] = None,
            install_at: Annotated[str | None, typer.Option("--install-at")] = None,
            certificate: Annotated[Path | None, typer.Option(
                "--certificate", help="PEM signing certificate (a signed update)")] = None,
            signature: Annotated[str | None, typer.Option(
                "--signature", help="base64 signature of the firmware")] = None,
            retries: RetriesOpt = None, retry_interval: IntervalOpt = None,
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Ask a charger to update its firmware (UpdateFirmware; SignedUpdateFirmware for a
        1.6 charger given --certificate and --signature)."""
        retrieve = instant(at) or datetime.now(UTC)
        install = instant(install_at)
        cert = certificate.read_text() if certificate else None

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await Transfers(store, channel, SystemClock()).update_firmware(
                cp_id, location, retrieve, retry=Retries(retries, retry_interval),
                install_at=install, signing_certificate=cert, signature=signature)

        transfer_out(relayed(config, url, api_key, go))

    @firmware.command("publish")
    def firmware_publish(cp_id: str, location: str,
                         checksum: Annotated[str, typer.Option("--checksum", help="MD5, hex")],
                         retries: RetriesOpt = None, retry_interval: IntervalOpt = None,
                         config: ConfigOpt = None, url: UrlOpt = None,
                         api_key: KeyOpt = None) -> None:
        """Ask a 2.0.1 Local Controller to publish a firmware file (PublishFirmware)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await Transfers(store, channel, SystemClock()).publish_firmware(
                cp_id, location, checksum, retry=Retries(retries, retry_interval))

        transfer_out(relayed(config, url, api_key, go))

    @firmware.command("unpublish")
    def firmware_unpublish(cp_id: str,
                           checksum: Annotated[str, typer.Option("--checksum")],
                           config: ConfigOpt = None, url: UrlOpt = None,
                           api_key: KeyOpt = None) -> None:
        """Ask a 2.0.1 Local Controller to stop publishing a file (UnpublishFirmware)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await Transfers(store, channel, SystemClock()).unpublish_firmware(
                cp_id, checksum)

        result = relayed(config, url, api_key, go)
        _print({"status": result.status, "response": result.response, "error": result.error})
        if result.response is None or result.response.get("status") != "Unpublished":
            raise typer.Exit(1)

    @firmware.command("status")
    def firmware_status(cp_id: str, limit: Annotated[int, typer.Option(min=1)] = 10,
                        config: ConfigOpt = None) -> None:
        """A charger's firmware updates and publications, newest first, as JSON."""
        async def go(store: Store) -> Any:
            found = [*await store.list_transfers(cp_id, FIRMWARE, limit),
                     *await store.list_transfers(cp_id, PUBLISH, limit)]
            return sorted(found, key=lambda r: -r.id)[:limit]

        _print([asdict(r) for r in stored(config, go)])

    @logs.command("get")
    def logs_get(cp_id: str, location: str,
                 log_type: Annotated[str, typer.Option(
                     "--type", help="DiagnosticsLog or SecurityLog")] = "DiagnosticsLog",
                 since: Annotated[str | None, typer.Option("--since")] = None,
                 until: Annotated[str | None, typer.Option("--until")] = None,
                 get_log: Annotated[bool, typer.Option(
                     "--get-log", help="1.6: GetLog of the security extension, not "
                                       "GetDiagnostics")] = False,
                 retries: RetriesOpt = None, retry_interval: IntervalOpt = None,
                 config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Ask a charger to upload its log to LOCATION (GetLog, or 1.6 GetDiagnostics)."""
        oldest, latest = instant(since), instant(until)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await Transfers(store, channel, SystemClock()).get_log(
                cp_id, location, log_type=log_type, oldest=oldest, latest=latest,
                retry=Retries(retries, retry_interval), get_log_on_16=get_log)

        transfer_out(relayed(config, url, api_key, go))

    @logs.command("status")
    def logs_status(cp_id: str, limit: Annotated[int, typer.Option(min=1)] = 10,
                    config: ConfigOpt = None) -> None:
        """A charger's log uploads (status, file name), newest first, as JSON."""
        _print([asdict(r) for r in stored(
            config, lambda store: store.list_transfers(cp_id, LOG, limit))])

    @variables.command("get")
    def variables_get(cp_id: str, names: Annotated[list[str], typer.Argument(
            help="Component.Variable, each part optionally Name[instance]; a component "
                 "Name@evse picks an EVSE")],
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """GetVariables, split to the station's ItemsPerMessage / BytesPerMessage."""
        pairs = [component_variable(n) for n in names]

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await VariableRequests(store, channel, SystemClock()).get(cp_id, pairs)

        _print(relayed(config, url, api_key, go))

    @variables.command("set")
    def variables_set(cp_id: str, assignments: Annotated[list[str], typer.Argument(
            help="Component.Variable=value")],
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """SetVariables, split to the station's ItemsPerMessage / BytesPerMessage."""
        values = []
        for text in assignments:
            name, sep, value = text.partition("=")
            if not sep:
                say(f"not Component.Variable=value: {text}")
                raise typer.Exit(2)
            values.append((*component_variable(name), value))

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await VariableRequests(store, channel, SystemClock()).set(cp_id, values)

        results = relayed(config, url, api_key, go)
        _print(results)
        if any(r.get("attributeStatus") not in ("Accepted", "RebootRequired") for r in results):
            raise typer.Exit(1)

    @app.command("transaction-status")
    def transaction_status(cp_id: str, transaction_id: Annotated[str | None, typer.Argument()
                                                                 ] = None,
                           config: ConfigOpt = None, url: UrlOpt = None,
                           api_key: KeyOpt = None) -> None:
        """GetTransactionStatus (2.0.1): messages still queued, transaction ongoing."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await StationQueries(store, channel, SystemClock()).transaction_status(
                cp_id, transaction_id)

        result = relayed(config, url, api_key, go)
        _print({"status": result.status, "response": result.response, "error": result.error})
        if not result.ok:
            raise typer.Exit(1)

    @app.command("charging-profiles")
    def charging_profiles(cp_id: str,
                          evse: Annotated[int | None, typer.Option("--evse")] = None,
                          purpose: Annotated[str | None, typer.Option("--purpose")] = None,
                          stack_level: Annotated[int | None, typer.Option("--stack-level")
                                                 ] = None,
                          source: Annotated[list[str] | None, typer.Option(
                              "--source", help="CSO, EMS, SO, Other")] = None,
                          timeout: Annotated[float, typer.Option(min=0.1)] = 30.0,
                          config: ConfigOpt = None, url: UrlOpt = None,
                          api_key: KeyOpt = None) -> None:
        """GetChargingProfiles (2.0.1) and the report the station sends in parts."""
        if purpose is None and stack_level is None and not source:
            source = ["CSO", "EMS", "SO", "Other"]  # the criterion may not be empty: all

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await StationQueries(store, channel, SystemClock()).charging_profiles(
                cp_id, evse_id=evse, purpose=purpose, stack_level=stack_level,
                sources=source, timeout_s=timeout)

        report = relayed(config, url, api_key, go)
        _print(asdict(report))
        if not report.complete:
            raise typer.Exit(1)


