"""HTTP load benchmark (run by hand): `python -m bench.http_load [--chargers N]`.

Starts `loadstar serve` with its HTTP app on free loopback ports, brings up N chargers that meter
every 10 s (the `meter` scenario of `bench/ocpp_load.py`, sites of 20), seeds `--meter-values`
meter values through `POST /v2/meter_values/`, then measures two windows of equal length:

- without REST load: the chargers' Heartbeat and MeterValues round trips;
- with REST load: `--rest-clients` concurrent clients page through all seeded meter values
  (`GET /v2/meter_values/`, limit 1000) and list charge points, sessions, OCPP messages and
  networks, as fast as answers come.

Prints the REST latency p50/p95 per endpoint, and the chargers' Heartbeat round trip p99 in both
windows with the rise (target: < 50 ms). Everything stays on loopback; the server and client
processes are killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.load_client import raise_nofile
from bench.ocpp_load import (
    LIVE,
    Server,
    cleanup,
    cp_id,
    free_port,
    loadstar_toml,
    merge,
    pct,
    start_clients,
)
from csms.identity import charge_point_uuid, network_uuid

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_PER_VALUE = 50
VALUES_PER_POST = 100


def start(tmp: Path, args: argparse.Namespace) -> tuple[Server, int, str]:
    """`loadstar serve` with HTTP on; its OCPP port, HTTP port and an admin key."""
    port, http_port = free_port(), free_port()
    toml = loadstar_toml(port, tmp / "loadstar.db", args.chargers, args.site_kw, args.heartbeat,
                         args.meter_interval)
    toml = toml.replace("[http]\nenabled = false\n",
                        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n')
    cfg = tmp / "loadstar.toml"
    cfg.write_text(toml)
    made = subprocess.run([sys.executable, "-m", "adapters.cli", "keys", "create", "--scopes",
                           "admin", "--json", "--config", str(cfg)], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    key = json.loads(made.stdout)["key"]
    log_path = tmp / "loadstar.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "adapters.cli", "serve", "--config",
                                 str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    server = Server("loadstar", proc, port, log_path)
    LIVE.append(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1).status_code == 200:
                return server, http_port, key
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"loadstar did not serve HTTP within 60 s:\n{log_path.read_text()[-2000:]}")


def seed_meter_values(base: str, key: str, n: int, chargers: int) -> tuple[int, datetime]:
    """POST `n` samples (energy registers) in batches over the first charger of each site; how
    many were accepted, and the earliest timestamp."""
    headers = {"Authorization": f"Bearer {key}"}
    t0 = datetime.now(UTC) - timedelta(days=2)
    accepted, i = 0, 0
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        while accepted < n and i < 10 * (n // (SAMPLES_PER_VALUE * VALUES_PER_POST) + 1):
            charger = cp_id((i * 20) % max(1, chargers))
            values = []
            for v in range(VALUES_PER_POST):
                at = t0 + timedelta(seconds=10 * (i * VALUES_PER_POST + v))
                values.append({"timestamp": at.isoformat(), "sampledValue": [
                    {"measurand": "Energy.Active.Import.Register", "unit": "Wh",
                     "value": float(1000 * v + s), "context": "Sample.Periodic"}
                    for s in range(SAMPLES_PER_VALUE)]})
            r = client.post("/v2/meter_values/", json={
                "chargePointId": str(charge_point_uuid(charger)), "connectorId": 1,
                "meterValues": values})
            if r.status_code >= 300:
                print(f"seeding stopped: {r.status_code} {r.text[:300]}", file=sys.stderr)
                break
            accepted += VALUES_PER_POST * SAMPLES_PER_VALUE
            i += 1
    return accepted, t0


class RestLoad:
    """Concurrent REST clients in a thread of their own, timing every request by endpoint."""

    def __init__(self, base: str, key: str, clients: int, chargers: int,
                 since: datetime) -> None:
        self.base, self.key, self.clients = base, key, clients
        self.networks = [str(network_uuid(f"S-{s:04d}")) for s in range(max(1, chargers // 20))]
        self.since = since
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _get(self, client: httpx.AsyncClient, label: str, path: str,
                   params: dict[str, Any]) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            r = await client.get(path, params=params)
        except httpx.HTTPError as exc:
            self.status[label][-1] += 1
            print(f"{label}: {type(exc).__name__}", file=sys.stderr)
            return None
        self.latency[label].append(time.perf_counter() - t0)
        self.status[label][r.status_code] += 1
        return r.json() if r.status_code == 200 else None

    async def _client(self, k: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        window = {"start": self.since.isoformat(),
                  "end": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=60) as client:
            turn = k
            while not self._stop.is_set():
                network = self.networks[turn % len(self.networks)]
                offset = 0
                while not self._stop.is_set():  # page through every meter value of a network
                    page = await self._get(client, "GET /v2/meter_values/ (1000)",
                                           "/v2/meter_values/",
                                           {"network": network, **window, "limit": 1000,
                                            "offset": offset})
                    if page is None or offset + 1000 >= page.get("total", 0):
                        break
                    offset += 1000
                await self._get(client, "GET /v2/charge_points/", "/v2/charge_points/",
                                {"limit": 100, "offset": (turn * 100) % 1000})
                await self._get(client, "GET /v2/charging_sessions/", "/v2/charging_sessions/",
                                {"network": network})
                await self._get(client, "GET /v2/ocpp_messages/", "/v2/ocpp_messages/",
                                {"limit": 100})
                await self._get(client, "GET /v2/networks/", "/v2/networks/", {})
                turn += self.clients

    async def _run(self) -> None:
        await asyncio.gather(*(self._client(k) for k in range(self.clients)))


def window(clients: Any, seconds: float) -> dict[str, Any]:
    clients.ask(("reset",), 30)
    time.sleep(seconds)
    return merge(clients.ask(("collect",), 60))


def main() -> None:
    """Parse the options, run both windows, print the table."""
    ap = argparse.ArgumentParser(prog="python -m bench.http_load",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--meter-values", type=int, default=100_000)
    ap.add_argument("--rest-clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of each window")
    ap.add_argument("--processes", type=int, default=2, help="charger client processes")
    ap.add_argument("--site-kw", type=float, default=150.0)
    ap.add_argument("--heartbeat", type=int, default=10, help="heartbeat interval, s")
    ap.add_argument("--meter-interval", type=float, default=10.0)
    ap.add_argument("--connect-timeout", type=float, default=180.0)
    ap.add_argument("--call-timeout", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    args.protocol, args.same_address = "1.6", False
    raise_nofile()
    try:
        with tempfile.TemporaryDirectory(prefix="http-load-") as tmpdir:
            server, http_port, key = start(Path(tmpdir), args)
            base = f"http://127.0.0.1:{http_port}"
            clients = start_clients(server, "meter", args)
            up = merge(clients.ask(("up", args.connect_timeout), args.connect_timeout + 30))
            print(f"booted {up['booted']} of {args.chargers}", file=sys.stderr)
            t0 = time.monotonic()
            seeded, since = seed_meter_values(base, key, args.meter_values, args.chargers)
            print(f"seeded {seeded} meter values in {time.monotonic() - t0:.1f} s",
                  file=sys.stderr)
            quiet = window(clients, args.duration)
            load = RestLoad(base, key, args.rest_clients, args.chargers, since)
            load.start()
            busy = window(clients, args.duration)
            load.stop()
            clients.quit()
            report(args, seeded, quiet, busy, load)
    finally:
        cleanup()


def report(args: argparse.Namespace, seeded: int, quiet: dict[str, Any], busy: dict[str, Any],
           load: RestLoad) -> None:
    print(f"\n## HTTP under OCPP load: {args.chargers} chargers metering every "
          f"{args.meter_interval:.0f} s, {seeded} meter values seeded, "
          f"{args.rest_clients} REST clients, windows of {args.duration:.0f} s\n")
    print(f"{'endpoint':<34}{'requests':>10}{'p50 ms':>10}{'p95 ms':>10}  statuses")
    for label, xs in sorted(load.latency.items()):
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(load.status[label].items()))
        print(f"{label:<34}{len(xs):>10}{1000 * pct(xs, 0.5):>10.1f}"
              f"{1000 * pct(xs, 0.95):>10.1f}  {statuses}")
    print()
    rows = [("Heartbeat", "Heartbeat"), ("MeterValues", "MeterValues")]
    print(f"{'chargers round trip':<34}{'no REST p99':>14}{'with REST p99':>16}{'rise ms':>10}")
    for label, key in rows:
        a, b = quiet["rtt"].get(key, []), busy["rtt"].get(key, [])
        pa, pb = 1000 * pct(a, 0.99), 1000 * pct(b, 0.99)
        print(f"{label + ' (n=' + str(len(a)) + '/' + str(len(b)) + ')':<34}{pa:>14.1f}"
              f"{pb:>16.1f}{pb - pa:>10.1f}")
    for name, w in (("quiet", quiet), ("busy", busy)):
        if w["timeouts"] or w["errors"]:
            print(f"  {name}: timeouts {dict(w['timeouts'])}, errors {dict(w['errors'])}")


if __name__ == "__main__":
    main()
