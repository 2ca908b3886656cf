"""Flood benchmark (run by hand): `python -m bench.flood [--heartbeats N] [--meter N]`.

Starts a real `loadstar serve` child process on a loopback port (fresh database each variant)
and measures what one misbehaving charger does to a well-behaved one:

- baseline: a charger sends MeterValues round trips (200, one every 20 ms), nothing else runs;
- flood, reading: meanwhile another charger (a process of its own) sends 5,000 Heartbeats as
  fast as it can and reads the answers;
- flood, never reading: the same flooder never reads its socket (its client stops pulling
  from TCP once one message is queued), so the server's answers back up;
- auth storm: with `require_auth = true`, 200 concurrent upgrades with a wrong Basic-auth
  password (from 127.0.0.2) while the registered charger connects with the right one (127.0.0.1).

Printed: p50/p95/p99/max MeterValues round trip per variant, round trips that failed (error,
timeout or closed), the flood rate achieved (sent and answered per second); for the auth storm,
how many wrong-password upgrades got an HTTP answer and the real charger's connect latency.
Everything is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from csms.security import hash_password
from csms.store import SqliteStore

CP_PASSWORD = "bench-Passw0rd-for-REAL"
BOOT16 = {"chargePointVendor": "Bench", "chargePointModel": "B1"}


# -- the server -------------------------------------------------------------------------------


class Server:
    """A `loadstar serve` child on a free loopback port with its own database."""

    def __init__(self, workdir: Path, *, require_auth: bool = False) -> None:
        self.db = workdir / "loadstar.db"
        self.config = workdir / "config.toml"
        self.config.write_text(
            '[ocpp]\nhost = "127.0.0.1"\nport = 0\nconfigure_after_boot = false\n'
            f"require_auth = {'true' if require_auth else 'false'}\n"
            # The bench measures OCPP; the HTTP app would take port 8080.
            '[http]\nenabled = false\n'
            f'[store]\npath = "{self.db}"\n[log]\nformat = "json"\nlevel = "info"\n'
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.errors = 0  # log lines at error level (a crashed handler, say)
        self._drain: asyncio.Task[None] | None = None

    async def register(self, cp_id: str, password: str) -> None:
        store = SqliteStore(str(self.db))
        await store.open()
        try:
            await store.register_charge_point(cp_id, hash_password(password))
        finally:
            await store.close()

    async def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "serve", "--config", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
        assert self.proc.stderr is not None
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 60)
            if not line:
                raise RuntimeError("loadstar serve exited before listening")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "ocpp_listening":
                self.port = int(event["port"])
                self._drain = asyncio.create_task(self._read_log())
                return

    async def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            if b'"level": "error"' in line or b'"level":"error"' in line:
                self.errors += 1

    def url(self, cp_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{cp_id}"

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            await self._drain


# -- the well-behaved charger -------------------------------------------------------------------


async def call(ws: ClientConnection, action: str, payload: dict[str, Any],
               timeout: float = 10.0) -> list[Any]:
    """One CALL and its answer (server CALLs in between are answered Accepted)."""
    uid = uuid.uuid4().hex
    await ws.send(json.dumps([2, uid, action, payload]))
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg[0] == 2:
                await ws.send(json.dumps([3, msg[1], {"status": "Accepted"}]))
            elif msg[1] == uid:
                return msg


@dataclass
class Meter:
    rtts: list[float] = field(default_factory=list)
    failed: int = 0


async def meter_charger(url: str, count: int, every_s: float, started: asyncio.Event) -> Meter:
    """Boot, then `count` MeterValues round trips, one every `every_s` seconds."""
    out = Meter()
    async with connect(url, subprotocols=["ocpp1.6"], open_timeout=30,  # type: ignore[list-item]
                       ping_interval=None) as ws:
        await call(ws, "BootNotification", BOOT16)
        started.set()
        next_at = time.perf_counter()
        for i in range(count):
            next_at += every_s
            payload = {"connectorId": 1, "meterValue": [{
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sampledValue": [{"value": str(1000 + i), "unit": "Wh",
                                  "measurand": "Energy.Active.Import.Register"}]}]}
            t0 = time.perf_counter()
            try:
                reply = await call(ws, "MeterValues", payload, timeout=10.0)
            except (TimeoutError, OSError, Exception):  # noqa: BLE001 - counted, not fatal
                out.failed += 1
                if ws.state.name != "OPEN":
                    break
            else:
                if reply[0] == 3:
                    out.rtts.append(time.perf_counter() - t0)
                else:
                    out.failed += 1
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return out


# -- the flooder (a process of its own, so it does not share the meter client's loop) ----------


async def _flood(url: str, count: int, read: bool, budget_s: float) -> dict[str, Any]:
    answered = 0
    done = asyncio.Event()
    # max_queue=1: a client that does not read stops pulling from TCP after one message.
    async with connect(url, subprotocols=["ocpp1.6"], max_queue=1,  # type: ignore[list-item]
                       ping_interval=None, open_timeout=30, close_timeout=1) as ws:
        await call(ws, "BootNotification", BOOT16)
        print(json.dumps({"ready": True}), flush=True)

        async def reader() -> None:
            nonlocal answered
            async for _ in ws:
                answered += 1
                if answered >= count:
                    done.set()

        reading = asyncio.create_task(reader()) if read else None
        t0 = time.perf_counter()
        sent = 0
        deadline = t0 + budget_s
        try:
            async with asyncio.timeout(budget_s):
                for i in range(count):
                    await ws.send(f'[2,"hb{i}","Heartbeat",{{}}]')
                    sent += 1
        except TimeoutError:
            pass
        send_s = time.perf_counter() - t0
        if reading is not None:
            try:
                await asyncio.wait_for(done.wait(), max(0.1, deadline - time.perf_counter()))
            except TimeoutError:
                pass
            reading.cancel()
        answer_s = time.perf_counter() - t0
    return {"sent": sent, "send_s": send_s, "answered": answered, "answer_s": answer_s}


def flooder_main(url: str, count: int, read: bool, budget_s: float) -> None:
    result = asyncio.run(_flood(url, count, read, budget_s))
    print(json.dumps(result), flush=True)


async def start_flooder(url: str, count: int, read: bool,
                        budget_s: float) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.flood", "--flooder", url, "--heartbeats", str(count),
        "--budget", str(budget_s), *([] if read else ["--no-read"]),
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)  # booted: flood from here
    if not line:
        raise RuntimeError("the flooder died before booting")
    return proc


async def flooder_result(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    try:
        out = await asyncio.wait_for(proc.stdout.read(), timeout)
        await proc.wait()
        return json.loads(out.decode().strip().splitlines()[-1])
    except (TimeoutError, IndexError, json.JSONDecodeError):
        proc.kill()
        await proc.wait()
        return {"sent": 0, "send_s": float("nan"), "answered": 0, "answer_s": float("nan")}


# -- the variants -------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


@dataclass
class Row:
    name: str
    meter: Meter
    flood: dict[str, Any] | None
    server_errors: int


async def run_meter_variant(name: str, args: argparse.Namespace, flood: str | None) -> Row:
    with tempfile.TemporaryDirectory(prefix="loadstar-flood-") as tmp:
        server = Server(Path(tmp))
        await server.start()
        try:
            started = asyncio.Event()
            flooder = None
            if flood is not None:
                flooder = await start_flooder(server.url("FLOODER"), args.heartbeats,
                                              flood == "read", args.budget)
            meter = await meter_charger(server.url("METER"), args.meter, args.every_ms / 1000,
                                        started)
            result = None
            if flooder is not None:
                result = await flooder_result(flooder, args.budget + 15)
        finally:
            await server.stop()
        return Row(name, meter, result, server.errors)


@dataclass
class AuthRow:
    answered: int
    refused_401: int
    unanswered: int
    connect_s: float
    boot_s: float
    server_errors: int


async def run_auth_variant(args: argparse.Namespace) -> AuthRow:
    with tempfile.TemporaryDirectory(prefix="loadstar-auth-") as tmp:
        server = Server(Path(tmp), require_auth=True)
        await server.register("REAL", CP_PASSWORD)
        await server.start()
        try:
            wrong = base64.b64encode(b"REAL:not-the-password").decode()
            right = base64.b64encode(f"REAL:{CP_PASSWORD}".encode()).decode()
            statuses: list[int | None] = []

            async def intruder() -> None:
                try:
                    async with connect(server.url("REAL"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                       additional_headers={"Authorization": f"Basic {wrong}"},
                                       open_timeout=args.auth_timeout,
                                       # From another address than the charger, as on a
                                       # real network (limits are kept per address).
                                       local_addr=("127.0.0.2", 0)):
                        statuses.append(101)
                except InvalidStatus as exc:
                    statuses.append(exc.response.status_code)
                except (TimeoutError, OSError, Exception):  # noqa: BLE001 - no answer in time
                    statuses.append(None)

            storm = [asyncio.create_task(intruder()) for _ in range(args.intruders)]
            await asyncio.sleep(0.05)  # the storm is under way when the real charger comes
            t0 = time.perf_counter()
            connect_s = boot_s = float("nan")
            try:
                async with connect(server.url("REAL"), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                   additional_headers={"Authorization": f"Basic {right}"},
                                   open_timeout=args.auth_timeout, ping_interval=None) as ws:
                    connect_s = time.perf_counter() - t0
                    await call(ws, "BootNotification", BOOT16, timeout=args.auth_timeout)
                    boot_s = time.perf_counter() - t0
            except (TimeoutError, OSError, Exception):  # noqa: BLE001 - reported as nan
                pass
            await asyncio.gather(*storm)
        finally:
            await server.stop()
        answered = sum(1 for s in statuses if s is not None)
        return AuthRow(answered, sum(1 for s in statuses if s == 401),
                       len(statuses) - answered, connect_s, boot_s, server.errors)


async def main_async(args: argparse.Namespace) -> None:
    print(f"MeterValues round trips: {args.meter}, one every {args.every_ms} ms; flood: "
          f"{args.heartbeats} Heartbeats (budget {args.budget} s); loadstar serve child process")
    print(f"{'variant':<24}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'ok':>6}"
          f"{'failed':>8}{'flood sent/s':>14}{'answered/s':>12}{'answered':>10}{'flood s':>9}"
          f"{'srv err':>9}")
    for name, flood in (("no flood (baseline)", None), ("flood, reading", "read"),
                        ("flood, never reading", "noread")):
        row = await run_meter_variant(name, args, flood)
        ms = [1000 * x for x in row.meter.rtts]
        f = row.flood
        sent_rate = f["sent"] / f["send_s"] if f and f["send_s"] > 0 else float("nan")
        ans_rate = f["answered"] / f["answer_s"] if f and f["answer_s"] > 0 else float("nan")
        answered = f"{f['answered']}/{f['sent']}" if f else "-"
        print(f"{row.name:<24}{_pct(ms, 0.5):>9.1f}{_pct(ms, 0.95):>9.1f}{_pct(ms, 0.99):>9.1f}"
              f"{max(ms, default=float('nan')):>9.1f}{len(ms):>6}{row.meter.failed:>8}"
              f"{sent_rate:>14.0f}{ans_rate:>12.0f}{answered:>10}"
              f"{f['answer_s'] if f else float('nan'):>9.2f}{row.server_errors:>9}")
    auth = await run_auth_variant(args)
    print()
    print(f"{'auth storm':<24}{'answered':>10}{'401':>6}{'no answer':>11}"
          f"{'real connect ms':>17}{'real boot ms':>14}{'srv err':>9}")
    print(f"{f'{args.intruders} wrong passwords':<24}{auth.answered:>10}{auth.refused_401:>6}"
          f"{auth.unanswered:>11}{1000 * auth.connect_s:>17.0f}{1000 * auth.boot_s:>14.0f}"
          f"{auth.server_errors:>9}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heartbeats", type=int, default=5000)
    ap.add_argument("--meter", type=int, default=200)
    ap.add_argument("--every-ms", type=float, default=20.0)
    ap.add_argument("--budget", type=float, default=15.0, help="flood time limit, s")
    ap.add_argument("--intruders", type=int, default=200)
    ap.add_argument("--auth-timeout", type=float, default=30.0)
    ap.add_argument("--flooder", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--no-read", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flooder:
        flooder_main(args.flooder, args.heartbeats, not args.no_read, args.budget)
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
