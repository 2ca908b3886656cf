"""The `loadstar` verbs: serve, the operator read path, charger registration, API keys,
simulate.

Each verb parses its options and prints; `lifecycle` runs `serve`, `simulate` runs the
simulators.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from adapters.cli import authlist, certificates, display_ops, station_ops
from adapters.cli import simulate as simulation
from adapters.cli.lifecycle import SHUTDOWN_TIMEOUT_S, run, say
from adapters.cli.options import ConfigOpt, KeyOpt, UrlOpt, jsonable
from csms.alerts import OPEN, controllability, to_api
from csms.api_keys import SCOPES, ApiKeys, ScopeError, parse_scopes
from csms.clock import Clock, ScaledClock, parse_iso
from csms.config import Config, ConfigError, load_config
from csms.logs import configure_logging
from csms.security import hash_password
from csms.service import probe_sqlite
from csms.store import SqliteStore, Store
from csms.store.base import AlertQuery

app = typer.Typer(help="Loadstar: OCPP 1.6J / 2.0.1 CSMS with load management.",
                  no_args_is_help=True, add_completion=False)
keys = typer.Typer(help="API keys of the HTTP side (stored hashed).", no_args_is_help=True)
app.add_typer(keys, name="keys")
charger = typer.Typer(help="A charger's registration: accept, pending, reject (through the "
                      "running server's HTTP API).", no_args_is_help=True)
app.add_typer(charger, name="charger")
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _config(path: Path | None) -> Config:
    """The config at `path`, else ./config.toml if present, else the defaults; exit 2 if bad."""
    if path is None and Path("config.toml").exists():
        path = Path("config.toml")
    try:
        return load_config(path)
    except ConfigError as e:
        for line in e.lines:
            say(line)
        raise typer.Exit(2) from None



@app.command()
def serve(
    config: ConfigOpt = None,
    clock_speed: Annotated[float, typer.Option(
        hidden=True, help="simulation only: run time this many times faster")] = 1.0,
    clock_start: Annotated[str | None, typer.Option(
        hidden=True, help="simulation only: the simulated instant at --clock-epoch")] = None,
    clock_epoch: Annotated[float | None, typer.Option(
        hidden=True, help="simulation only: wall time (Unix s) the clock starts at")] = None,
    shutdown_timeout: Annotated[float, typer.Option(
        min=0, help="seconds a graceful stop may take before the process exits anyway")
    ] = SHUTDOWN_TIMEOUT_S,
) -> None:
    """Run the CSMS (OCPP websocket server) until SIGTERM or SIGINT (a second one: at once)."""
    cfg = _config(config)
    configure_logging(cfg.log.format, cfg.log.level)
    clock: Clock | None = None
    if clock_speed != 1.0 or clock_start is not None:
        start = parse_iso(clock_start) if clock_start else datetime.now(UTC)
        clock = ScaledClock(start, clock_speed, clock_epoch or time.time())
    code = asyncio.run(run(cfg, clock, shutdown_timeout))
    raise typer.Exit(code)


async def _with_store(config: Config, fn: Any) -> Any:
    store = SqliteStore(config.store.path)
    try:
        probe_sqlite(config.store.path)
        await store.open()
        return await fn(store)
    except sqlite3.Error as e:
        say(f"cannot use database {config.store.path}: {e}")
        raise typer.Exit(1) from None
    finally:
        # Also after a failed open: the store's worker thread would keep the process alive.
        await store.close()


CAN = {True: "yes", False: "no", None: "?"}


@app.command()
def chargers(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List charge points: id, protocol, online, whether load management can limit it (and
    why), status per connector."""
    cfg = _config(config)
    records = asyncio.run(_with_store(cfg, lambda s: s.list_charge_points()))

    def operator(cp_id: str) -> bool | None:
        """What config.toml says of the charger (its first matching [[chargers]])."""
        found = next((c for c in cfg.chargers if fnmatchcase(cp_id, c.match)), None)
        return None if found is None else found.controllable

    if as_json:
        out = []
        for r in records:
            can, why = controllability(r.capabilities, r.firmware, operator(r.cp_id))
            out.append({**jsonable(asdict(r)), "controllable": can, "controllable_why": why})
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table("charge point", "protocol", "online", "vendor / model", "controllable",
                  "connectors")
    for r in records:
        conns = ", ".join(f"{c.connector_id}:{c.status}" for c in r.connectors) or "-"
        can, why = controllability(r.capabilities, r.firmware, operator(r.cp_id))
        table.add_row(r.cp_id, r.protocol or "-", "yes" if r.online else "no",
                      f"{r.vendor or '-'} / {r.model or '-'}",
                      f"{CAN[can]}: {why}", conns)
    console.print(table)


# `loadstar alerts --all` looks this far back.
ALERTS_ALL_DAYS = 3650


@app.command()
def alerts(config: ConfigOpt = None, show_all: Annotated[bool, typer.Option(
        "--all", help="also resolved alerts, not only open ones")] = False,
        as_json: JsonOpt = False) -> None:
    """List open alerts (over-limit sites and groups, chargers that cannot be limited)."""
    cfg = _config(config)
    now = datetime.now(UTC)
    query = AlertQuery(start=now - timedelta(days=ALERTS_ALL_DAYS), end=now + timedelta(days=1),
                       statuses=() if show_all else OPEN, limit=1000)
    found, _ = asyncio.run(_with_store(cfg, lambda s: s.list_alerts(query)))
    if as_json:
        typer.echo(json.dumps([to_api(a) for a in found], indent=2))
        return
    table = Table("start", "status", "urgency", "name", "about", "description")
    for a in found:
        about = a.cp_id or a.node_id or a.site_id or "-"
        table.add_row(a.start.isoformat(timespec="seconds"), a.status, a.urgency, a.name,
                      about, a.description)
    console.print(table)


@app.command()
def sessions(config: ConfigOpt = None, active: Annotated[bool, typer.Option(
        "--active", help="only sessions still charging")] = False,
        as_json: JsonOpt = False) -> None:
    """List sessions: id, charger, connector, id tag, start, stop, energy kWh."""
    cfg = _config(config)
    records = asyncio.run(_with_store(cfg, lambda s: s.list_sessions(active_only=active)))
    if as_json:
        typer.echo(json.dumps([jsonable(asdict(r)) for r in records], indent=2))
        return
    table = Table("session", "charger", "connector", "id tag", "start", "stop", "kWh")
    for r in records:
        table.add_row(str(r.id), r.cp_id, str(r.connector_id), r.id_tag or "-",
                      r.started_at.isoformat(timespec="seconds"),
                      r.stopped_at.isoformat(timespec="seconds") if r.stopped_at else "-",
                      f"{r.energy_kwh:.3f}")
    console.print(table)


async def _site_rows(store: Store) -> list[dict[str, Any]]:
    """Each stored site with what its last plan said: limit, overloads, unlimitable draw."""
    rows = []
    for spec in await store.list_sites():
        plans = await store.list_plans(spec["id"], limit=1)
        inputs = plans[0]["inputs"] if plans else {}
        rows.append({
            "site": spec["id"], "max_power_kw": spec.get("max_power_kw"),
            "last_plan": plans[0]["ts"] if plans else None,
            "limit_kw": plans[0]["limit_kw"] if plans else None,
            "overloaded": inputs.get("overloaded") or {},
            "unlimitable_kw": round(float(inputs.get("unlimitable_w") or 0.0) / 1000.0, 3),
        })
    return rows


@app.command()
def sites(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List sites: limit, last plan, nodes over their limit, and what the chargers nobody
    can limit could draw at once (flagged when that alone exceeds the limit)."""
    cfg = _config(config)
    rows = asyncio.run(_with_store(cfg, _site_rows))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("site", "limit kW", "last plan", "over its limit", "unlimitable kW")
    for r in rows:
        limit = r["limit_kw"] if r["limit_kw"] is not None else r["max_power_kw"]
        over = ", ".join(f"{node} +{v['over_w'] / 1000.0:.1f} kW"
                         for node, v in r["overloaded"].items()) or "-"
        risky = limit is not None and r["unlimitable_kw"] > limit
        table.add_row(r["site"], "-" if limit is None else f"{limit:g}", r["last_plan"] or "-",
                      over, f"{r['unlimitable_kw']:g}" + (" (can exceed the limit)"
                                                          if risky else ""))
    console.print(table)


@app.command("add-charger")
def add_charger(cp_id: str, config: ConfigOpt = None, password: Annotated[str | None, typer.Option(
        "--password", help="Basic-auth password (stored hashed)")] = None) -> None:
    """Register a charge point, optionally with a Basic-auth password."""
    cfg = _config(config)
    hashed = hash_password(password) if password else None
    asyncio.run(_with_store(cfg, lambda s: s.register_charge_point(cp_id, hashed)))
    typer.echo(f"registered {cp_id}" + (" with a password" if password else ""))




def _register(cp_id: str, status: str, config: Path | None, url: str | None,
              api_key: str | None, as_json: bool) -> None:
    """Set `cp_id`'s registration through the running server, which applies it to the live
    charger at once (the store alone cannot: a connected charger is asked to boot again)."""
    cfg = _config(config)
    if url is None:
        host = "127.0.0.1" if cfg.http.host in ("0.0.0.0", "::") else cfg.http.host
        url = f"http://{host}:{cfg.http.port}"
    if not api_key:
        say("an API key is needed: --api-key or LOADSTAR_API_KEY (loadstar keys create)")
        raise typer.Exit(2)
    try:
        r = httpx.put(f"{url.rstrip('/')}/v2/charge_point_registrations/{cp_id}",
                      json={"status": status}, timeout=30,
                      headers={"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as e:
        say(f"cannot reach the server at {url}: {e}")
        raise typer.Exit(1) from None
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    if r.status_code != 200:
        say(f"refused ({r.status_code}): {body.get('data') or body.get('message') or r.text}")
        raise typer.Exit(1)
    [found] = body["data"]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    asked = " (asked to boot again)" if found["bootNotificationRequested"] else ""
    typer.echo(f"{cp_id}: {status}{asked}")


@charger.command("accept")
def charger_accept(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
                   api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Register a charger Accepted: its next boot is accepted (a connected one is asked)."""
    _register(cp_id, "Accepted", config, url, api_key, as_json)


@charger.command("pending")
def charger_pending(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
                    api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Register a charger Pending: it may be configured, it sends nothing but its boot."""
    _register(cp_id, "Pending", config, url, api_key, as_json)


@charger.command("reject")
def charger_reject(cp_id: str, config: ConfigOpt = None, url: UrlOpt = None,
                   api_key: KeyOpt = None, as_json: JsonOpt = False) -> None:
    """Register a charger Rejected: everything but its boot gets SecurityError."""
    _register(cp_id, "Rejected", config, url, api_key, as_json)


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="CSMS websocket base URL", callback=simulation.ws_url)
                   ] = "ws://127.0.0.1:9000/ocpp",
    chargers: Annotated[int, typer.Option(min=1, help="number of chargers")] = 10,
    protocol: Annotated[simulation.Protocol, typer.Option(help="what the chargers speak")
                        ] = simulation.Protocol.MIXED,
    connectors: Annotated[int, typer.Option(min=1, help="connectors per charger")] = 1,
    duration: Annotated[float, typer.Option(help="simulated seconds",
                                            callback=simulation.positive)] = 3600.0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second",
                                         callback=simulation.positive)] = 60.0,
) -> None:
    """Run simulated chargers and EVs against a CSMS and print a summary."""
    code = simulation.run(url, chargers=chargers, protocol=protocol, connectors=connectors,
                          duration_s=duration, speed=speed)
    raise typer.Exit(code)



@keys.command("create")
def keys_create(
    scopes: Annotated[str, typer.Option(
        "--scopes", help=f"comma-separated, of: {', '.join(SCOPES)}")] = "read",
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Make an API key and print it once (only its hash is stored)."""
    cfg = _config(config)
    try:
        wanted = parse_scopes(scopes)
    except ScopeError as e:
        say(f"--scopes: {e}")
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    new = asyncio.run(_with_store(cfg, lambda s: ApiKeys(s).create(wanted, now)))
    if as_json:
        typer.echo(json.dumps({"id": new.id, "key": new.key, "scopes": list(new.scopes),
                               "created": new.created_at.isoformat()}))
        return
    typer.echo(f"key {new.id} ({','.join(new.scopes)}): {new.key}")
    typer.echo("It is shown only this once: keep it now.")


@keys.command("list")
def keys_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List API keys: id, scopes, created, revoked (never the key)."""
    cfg = _config(config)
    records = asyncio.run(_with_store(cfg, lambda s: ApiKeys(s).list()))
    rows = [{"id": r.id, "scopes": list(r.scopes), "created": r.created_at.isoformat(),
             "revoked": r.revoked_at.isoformat() if r.revoked_at else None} for r in records]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "scopes", "created", "revoked")
    for row in rows:
        table.add_row(str(row["id"]), ",".join(row["scopes"]), str(row["created"]),
                      str(row["revoked"] or "-"))
    console.print(table)


@keys.command("revoke")
def keys_revoke(key_id: int, config: ConfigOpt = None) -> None:
    """Revoke an API key by id: it stops working at once, also on a running server."""
    cfg = _config(config)
    now = datetime.now(UTC)
    if not asyncio.run(_with_store(cfg, lambda s: ApiKeys(s).revoke(key_id, now))):
        say(f"no live key {key_id}")
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")


# Reservations and local lists: typed helpers whose CALLs go through the server's relay.
authlist.register(app, _config, _with_store)
certificates.register(app, _config, _with_store)


# Firmware, logs, variables and station queries: typed helpers whose CALLs go through the
# server's relay.
station_ops.register(app, _config, _with_store)
display_ops.register(app, _config, _with_store)
