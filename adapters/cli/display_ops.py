"""`loadstar display ...`, `monitoring ...`, `customer-information` and `network-profile set`:
the 2.0.1 typed helpers of csms.display_monitoring and csms.network_profile, their CALLs
through the running server's HTTP relay (as `charging-profiles` does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

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
from adapters.cli.station_ops import relayer
from csms.clock import SystemClock
from csms.commands import CommandResult
from csms.config import Config
from csms.display_monitoring import DisplayMonitoring, Report
from csms.network_profile import NetworkProfile, set_network_profile
from csms.pki.ocsp import hash_data
from csms.store import Store
from csms.variable_split import component_of, variable_of

display = typer.Typer(help="2.0.1 display messages (SetDisplayMessage, GetDisplayMessages, "
                           "ClearDisplayMessage).", no_args_is_help=True)
monitoring = typer.Typer(help="2.0.1 variable monitoring (SetVariableMonitoring, "
                              "SetMonitoringLevel, SetMonitoringBase, "
                              "ClearVariableMonitoring, GetMonitoringReport).",
                         no_args_is_help=True)
network = typer.Typer(help="2.0.1 network connection profiles (SetNetworkProfile).",
                      no_args_is_help=True)

TimeoutOpt = Annotated[float, typer.Option(min=0.1, help="seconds to wait for the report")]


def _print(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2))


def _command_out(result: CommandResult, accepted: tuple[str, ...] = ("Accepted",)) -> None:
    """Print the answer; exit 1 unless the command was answered with a status in `accepted`
    (answers without a top-level status, as lists of results, need only be answered)."""
    _print({"status": result.status, "response": result.response, "error": result.error})
    response = result.response
    if response is None or "status" in response and response["status"] not in accepted:
        raise typer.Exit(1)


def _report_out(report: Report) -> None:
    _print(asdict(report))
    if not report.complete:
        raise typer.Exit(1)


def _component_variable(text: str) -> dict[str, Any]:
    component, variable = component_variable(text)
    return {"component": component_of(component), "variable": variable_of(variable)}


def register(app: typer.Typer, config_of: Callable[[Path | None], Config],
             with_store: Callable[[Config, Any], Any]) -> None:
    """Add the verbs to `app` (the `loadstar` command)."""
    app.add_typer(display, name="display")
    app.add_typer(monitoring, name="monitoring")
    app.add_typer(network, name="network-profile")
    relayed = relayer(config_of, with_store)

    def helper(store: Store, channel: RelayChannel) -> DisplayMonitoring:
        return DisplayMonitoring(store, channel, SystemClock())

    @display.command("set")
    def display_set(cp_id: str, message_id: int, content: str,
                    priority: Annotated[str, typer.Option(
                        help="AlwaysFront, InFront or NormalCycle")] = "NormalCycle",
                    message_format: Annotated[str, typer.Option(
                        "--format", help="ASCII, HTML, URI or UTF8")] = "UTF8",
                    language: Annotated[str | None, typer.Option()] = None,
                    state: Annotated[str | None, typer.Option(
                        help="Charging, Faulted, Idle or Unavailable")] = None,
                    start: Annotated[str | None, typer.Option(help="ISO 8601")] = None,
                    end: Annotated[str | None, typer.Option(help="ISO 8601")] = None,
                    transaction_id: Annotated[str | None, typer.Option()] = None,
                    config: ConfigOpt = None, url: UrlOpt = None,
                    api_key: KeyOpt = None) -> None:
        """Show CONTENT on a station as message MESSAGE_ID (SetDisplayMessage, O01)."""
        since, until = instant(start), instant(end)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).set_display_message(
                cp_id, message_id, content, priority=priority, message_format=message_format,
                language=language, state=state, start=since, end=until,
                transaction_id=transaction_id)

        _command_out(relayed(config, url, api_key, go))

    @display.command("list")
    def display_list(cp_id: str,
                     message_id: Annotated[list[int] | None, typer.Option("--id")] = None,
                     priority: Annotated[str | None, typer.Option()] = None,
                     state: Annotated[str | None, typer.Option()] = None,
                     timeout: TimeoutOpt = 30.0, config: ConfigOpt = None,
                     url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """The messages a station shows (GetDisplayMessages and its report, O02/O03)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).display_messages(
                cp_id, ids=message_id, priority=priority, state=state, timeout_s=timeout)

        _report_out(relayed(config, url, api_key, go))

    @display.command("clear")
    def display_clear(cp_id: str, message_id: int, config: ConfigOpt = None,
                      url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Remove message MESSAGE_ID from a station's display (ClearDisplayMessage, O05)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).clear_display_message(cp_id, message_id)

        _command_out(relayed(config, url, api_key, go))

    @monitoring.command("set")
    def monitoring_set(cp_id: str, name: Annotated[str, typer.Argument(
            help="Component.Variable (Name[instance], a component Name@evse)")],
            monitor_type: Annotated[str, typer.Option(
                "--type", help="UpperThreshold, LowerThreshold, Delta, Periodic or "
                               "PeriodicClockAligned")],
            value: Annotated[float, typer.Option()],
            severity: Annotated[int, typer.Option(min=0, max=9)],
            monitor_id: Annotated[int | None, typer.Option(
                "--id", help="replace this monitor")] = None,
            transaction: Annotated[bool, typer.Option(
                help="only during a transaction")] = False,
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Set a monitor on a variable (SetVariableMonitoring, N04)."""
        monitor: dict[str, Any] = {"value": value, "type": monitor_type, "severity": severity,
                                   "transaction": transaction, **_component_variable(name)}
        if monitor_id is not None:
            monitor["id"] = monitor_id

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).set_variable_monitoring(cp_id, [monitor])

        result = relayed(config, url, api_key, go)
        _command_out(result)
        if any(r.get("status") != "Accepted"
               for r in (result.response or {}).get("setMonitoringResult", [])):
            raise typer.Exit(1)

    @monitoring.command("level")
    def monitoring_level(cp_id: str, severity: Annotated[int, typer.Argument(min=0, max=9)],
                         config: ConfigOpt = None, url: UrlOpt = None,
                         api_key: KeyOpt = None) -> None:
        """Report only events of SEVERITY or more severe (SetMonitoringLevel, N05)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).set_monitoring_level(cp_id, severity)

        _command_out(relayed(config, url, api_key, go))

    @monitoring.command("base")
    def monitoring_base(cp_id: str, base: Annotated[str, typer.Argument(
            help="All, FactoryDefault or HardWiredOnly")],
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Which preconfigured monitors are active (SetMonitoringBase, N03)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).set_monitoring_base(cp_id, base)

        _command_out(relayed(config, url, api_key, go))

    @monitoring.command("clear")
    def monitoring_clear(cp_id: str, ids: list[int], config: ConfigOpt = None,
                         url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Remove monitors by id (ClearVariableMonitoring, N06)."""
        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).clear_variable_monitoring(cp_id, ids)

        result = relayed(config, url, api_key, go)
        _command_out(result)
        if any(r.get("status") != "Accepted"
               for r in (result.response or {}).get("clearMonitoringResult", [])):
            raise typer.Exit(1)

    @monitoring.command("report")
    def monitoring_report(cp_id: str,
                          criterion: Annotated[list[str] | None, typer.Option(
                              "--criterion", help="ThresholdMonitoring, DeltaMonitoring, "
                                                  "PeriodicMonitoring")] = None,
                          name: Annotated[list[str] | None, typer.Option(
                              "--variable", help="Component.Variable")] = None,
                          timeout: TimeoutOpt = 30.0, config: ConfigOpt = None,
                          url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """A station's monitors (GetMonitoringReport and its report, N02)."""
        pairs = [_component_variable(n) for n in name or []]

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).monitoring_report(
                cp_id, criteria=criterion, component_variables=pairs, timeout_s=timeout)

        _report_out(relayed(config, url, api_key, go))

    @app.command("customer-information")
    def customer_information(
            cp_id: str,
            id_token: Annotated[str | None, typer.Option("--id-token")] = None,
            token_type: Annotated[str, typer.Option("--token-type")] = "ISO14443",
            customer_identifier: Annotated[str | None, typer.Option(
                "--customer-identifier")] = None,
            certificate: Annotated[Path | None, typer.Option(
                "--certificate", help="the customer's PEM certificate")] = None,
            issuer: Annotated[Path | None, typer.Option(
                "--issuer", help="its issuer's PEM certificate")] = None,
            report: Annotated[bool, typer.Option("--report")] = False,
            clear: Annotated[bool, typer.Option("--clear")] = False,
            timeout: TimeoutOpt = 30.0, config: ConfigOpt = None, url: UrlOpt = None,
            api_key: KeyOpt = None) -> None:
        """Report and/or clear what a station keeps of a customer (CustomerInformation,
        N09/N10); with neither --report nor --clear, report."""
        if not report and not clear:
            report = True
        token = None if id_token is None else {"idToken": id_token, "type": token_type}
        if issuer is not None and certificate is None:
            say("--issuer goes with --certificate")
            raise typer.Exit(2)
        cert = None if certificate is None else hash_data(
            certificate.read_text(), issuer.read_text() if issuer else None)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await helper(store, channel).customer_information(
                cp_id, report=report, clear=clear, id_token=token,
                customer_identifier=customer_identifier, customer_certificate=cert,
                timeout_s=timeout)

        _report_out(relayed(config, url, api_key, go))

    @network.command("set")
    def network_profile_set(
            cp_id: str, csms_url: Annotated[str, typer.Argument(help="ws:// or wss://")],
            slot: Annotated[int, typer.Option("--slot", min=0,
                                              help="configuration slot")] = 1,
            security_profile: Annotated[int, typer.Option(
                "--security-profile", min=1, max=3)] = 2,
            interface: Annotated[str, typer.Option("--interface")] = "Wired0",
            message_timeout: Annotated[int, typer.Option("--message-timeout", min=1)] = 30,
            apn: Annotated[str | None, typer.Option("--apn")] = None,
            apn_user: Annotated[str | None, typer.Option("--apn-user")] = None,
            apn_password: Annotated[str | None, typer.Option(
                "--apn-password", envvar="LOADSTAR_APN_PASSWORD")] = None,
            config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Store a connection profile in a station's slot (SetNetworkProfile, B09)."""
        profile = NetworkProfile(csms_url, security_profile, interface, message_timeout,
                                 apn, apn_user, apn_password)

        async def go(store: Store, channel: RelayChannel) -> Any:
            return await set_network_profile(channel, cp_id, slot, profile)

        _command_out(relayed(config, url, api_key, go))
