"""OCPP load benchmark (run by hand): `python -m bench.ocpp_load [--chargers N] [--scenario S]`.

Starts `loadstar serve` (and/or the logic-free relay of `bench/relay.py`) as a subprocess on a
free loopback port, then N lightweight chargers (plain websockets + json, `bench/load_client.py`)
spread over a few client processes, and prints one table per scenario with Loadstar, the relay
and their ratio:

- idle:  connect + boot + StatusNotification, then heartbeats only (interval 30 s);
- meter: sites of 20 chargers x 22 kW on `--site-kw` (150 kW: limits bind), a transaction on
         every charger, MeterValues (energy, power) every 10 s; each car changes what it wants
         now and then, and reports min(demand, the limit it accepted), so plans must change;
- storm: all connected and booted; then every socket drops at once (abort) and reconnects and
         re-boots; time until all are booted again.

Rows: connected/booted; frames per second (both directions, as the clients counted them);
round trip p50/p95/p99 of BootNotification (connect phase, or the storm) and MeterValues; from a
MeterValues after which DESIGN section 3 asks for a new profile for that car (it fell well below
a limit it drew: lend; a lent car draws well less: lend more; a lent car wants more: reclaim) to
the next SetChargingProfile that charger receives (p50/p95/p99; changes never followed by one
are counted; a car that draws more or less within its limit needs no profile and is not
counted); from a lent car's ramp-up (its limit was lowered to about 1 kW above its draw, and it
now wants more) to the raise that gives its share back; server CPU per
frame (utime+stime of the server process over the window, /proc/<pid>/stat); server RSS per
connection ((RSS with N booted - RSS before any) / N); timeouts and errors as the clients saw
them. Every charger connects from its own loopback address (127.1.x.y), as chargers do from
their own modems; `--same-address` sends all from 127.0.0.1 (Loadstar then refuses upgrades
beyond 10/s, burst 200, per address).

Everything stays on loopback, every phase has a deadline, and the subprocesses are killed on
exit (also on Ctrl-C). Clients and server share this machine's cores: on 2 cores the numbers
include the clients' own CPU and whatever else runs (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.load_client import WorkerSpec, raise_nofile, worker_main

SITE_SIZE = 20
TICK = os.sysconf("SC_CLK_TCK")


# -- the server process --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cp_id(i: int) -> str:
    """Charger i: B-SSSS-NN, site SSSS, NN-th of its site."""
    return f"B-{i // SITE_SIZE:04d}-{i % SITE_SIZE:02d}"


def loadstar_toml(port: int, db: Path, n: int, site_kw: float, heartbeat_s: int,
                  meter_s: float) -> str:
    lines = [
        "[ocpp]", 'host = "127.0.0.1"', f"port = {port}", f"heartbeat_interval_s = {heartbeat_s}",
        "configure_after_boot = true", f"meter_sample_interval_s = {int(meter_s)}",
        'meter_measurands = ["Energy.Active.Import.Register", "Power.Active.Import"]',
        "", "[http]", "enabled = false",  # OCPP is measured; HTTP would take port 8080
        "", "[store]", f'path = "{db}"', "", "[log]", 'format = "json"', 'level = "warning"',
        "", "[load]", "enabled = true", "",
    ]
    for s in range(math.ceil(n / SITE_SIZE)):
        lines += ["[[sites]]", f'id = "S-{s:04d}"', f"max_power_kw = {site_kw}",
                  f'chargers = ["B-{s:04d}-*"]', ""]
    lines += ["[[chargers]]", 'match = "*"', 'current_type = "AC_phase3_LN"', "voltage_v = 230.0",
              "max_power_kw = 22.0", "max_current_a = 32.0", ""]
    return "\n".join(lines)


@dataclass
class Server:
    target: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        """utime + stime of the server process (all its threads), in seconds."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> float:
        """SIGTERM; seconds until it exited (killed after 15 s: inf)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return math.inf
        return time.monotonic() - t0

    def warnings(self) -> Counter[str]:
        """Server log lines at warning and above, by event."""
        out: Counter[str] = Counter()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        for line in text.splitlines():
            try:
                ev = json.loads(line)
                out[str(ev.get("event"))] += 1
            except (json.JSONDecodeError, AttributeError):
                if line.strip():
                    out["(non-JSON line)"] += 1
        return out


def start_server(target: str, tmp: Path, args: argparse.Namespace) -> Server:
    port = free_port()
    log_path = tmp / f"{target}.log"
    if target == "loadstar":
        cfg = tmp / "loadstar.toml"
        cfg.write_text(loadstar_toml(port, tmp / "loadstar.db", args.chargers, args.site_kw,
                                     args.heartbeat, args.meter_interval))
        cmd = [sys.executable, "-m", "adapters.cli", "serve", "--config", str(cfg)]
    else:
        cmd = [sys.executable, "-m", "bench.relay", "--port", str(port),
               "--heartbeat", str(args.heartbeat)]
    with open(log_path, "wb") as log:
        # Its own session: a Ctrl-C reaches the bench, which stops it; not both at once.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)
    server = Server(target, proc, port, log_path)
    LIVE.append(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{target} exited early:\n{log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{target} did not listen within 60 s")


LIVE: list[Server] = []
WORKERS: list[mp.Process] = []


def cleanup() -> None:
    for w in WORKERS:
        if w.is_alive():
            w.kill()
    for w in WORKERS:
        w.join(5)
    WORKERS.clear()
    for s in LIVE:
        try:
            s.stop()
        except (OSError, subprocess.SubprocessError):
            s.proc.kill()
    LIVE.clear()


# -- the client processes ------------------------------------------------------------------------


@dataclass
class Clients:
    pipes: list[Connection] = field(default_factory=list)
    procs: list[mp.Process] = field(default_factory=list)

    def ask(self, cmd: tuple[Any, ...], timeout_s: float) -> list[dict[str, Any]]:
        """Send `cmd` to every worker; their answers (a worker that misses the deadline is
        killed and answers {"lost": True})."""
        for p in self.pipes:
            p.send(cmd)
        deadline = time.monotonic() + timeout_s
        out: list[dict[str, Any]] = []
        for p, proc in zip(self.pipes, self.procs, strict=True):
            left = max(0.1, deadline - time.monotonic())
            if p.poll(left):
                try:
                    out.append(p.recv())
                    continue
                except EOFError:
                    pass
            proc.kill()
            out.append({"lost": True})
        return out

    def quit(self) -> None:
        for p, proc in zip(self.pipes, self.procs, strict=True):
            try:
                p.send(("quit",))
                if p.poll(10):
                    p.recv()
            except (OSError, EOFError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def start_clients(server: Server, scenario: str, args: argparse.Namespace) -> Clients:
    ctx = mp.get_context("spawn")
    clients = Clients()
    n_proc = max(1, min(args.processes, args.chargers))
    for k in range(n_proc):
        idx = list(range(k, args.chargers, n_proc))
        spec = WorkerSpec(
            url=f"ws://127.0.0.1:{server.port}/ocpp", ids=[cp_id(i) for i in idx], indexes=idx,
            protocol=args.protocol, scenario=scenario, meter_interval_s=args.meter_interval,
            call_timeout_s=args.call_timeout, concurrency=args.concurrency,
            own_address=not args.same_address, seed=args.seed * 1000 + k)
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker_main, args=(spec, child), daemon=True,
                           name=f"ocpp-load-{k}")
        proc.start()
        WORKERS.append(proc)
        clients.pipes.append(parent)
        clients.procs.append(proc)
    return clients


# -- one run: a scenario against a target --------------------------------------------------------


def merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' stats added up."""
    out: dict[str, Any] = {"connected": 0, "booted": 0, "sent": 0, "received": 0,
                           "rtt": {}, "mv_to_scp": [], "reclaim": [], "reclaims": 0,
                           "server_calls": Counter(), "timeouts": Counter(),
                           "errors": Counter(), "changes": 0,
                           "reboot_s": [], "missing": 0, "lost": 0}
    for a in answers:
        if a.get("lost"):
            out["lost"] += 1
            continue
        out["connected"] += a.get("connected", 0)
        out["booted"] += a.get("booted", 0)
        out["reboot_s"] += a.get("reboot_s", [])
        out["missing"] += a.get("missing", 0)
        st = a.get("stats") or {}
        out["sent"] += st.get("sent", 0)
        out["received"] += st.get("received", 0)
        out["changes"] += st.get("changes", 0)
        out["mv_to_scp"] += st.get("mv_to_scp", [])
        out["reclaim"] += st.get("reclaim", [])
        out["reclaims"] += st.get("reclaims", 0)
        for k, v in (st.get("rtt") or {}).items():
            out["rtt"].setdefault(k, []).extend(v)
        for key in ("server_calls", "timeouts", "errors"):
            out[key].update(st.get(key) or {})
    return out


def run_one(target: str, scenario: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, bring N chargers up, measure the window, stop everything."""
    res: dict[str, Any] = {"target": target, "scenario": scenario}
    with tempfile.TemporaryDirectory(prefix=f"ocpp-load-{target}-") as tmpdir:
        tmp = Path(tmpdir)
        server = start_server(target, tmp, args)
        clients: Clients | None = None
        try:
            time.sleep(1.0)  # let start-up finish before the baseline
            rss0 = server.rss_kib()
            cpu_boot0 = server.cpu_s()
            clients = start_clients(server, scenario, args)
            t0 = time.monotonic()
            up = merge(clients.ask(("up", args.connect_timeout), args.connect_timeout + 30))
            res["up_s"] = time.monotonic() - t0
            res["up_cpu_s"] = server.cpu_s() - cpu_boot0
            res["up"] = up
            time.sleep(args.settle)  # configuration, floors and first plans go out
            res["rss_per_conn_kib"] = (server.rss_kib() - rss0) / max(1, up["booted"])
            res["rss0_kib"] = rss0
            clients.ask(("reset",), 30)
            cpu0, w0 = server.cpu_s(), time.monotonic()
            if scenario == "storm":
                stormed = clients.ask(("storm", args.duration), args.duration + 30)
                # What follows the re-boots (configuration, floors) belongs to the storm too.
                time.sleep(args.settle)
                answers = clients.ask(("collect",), 60)
                for a, s in zip(answers, stormed, strict=True):
                    a["reboot_s"], a["missing"] = s.get("reboot_s", []), s.get("missing", 0)
            else:
                time.sleep(args.duration)
                answers = clients.ask(("collect",), 60)
            window = time.monotonic() - w0
            cpu1 = server.cpu_s() if server.alive() else float("nan")
            res["window"] = merge(answers)
            res["window_s"] = window
            res["cpu_s"] = cpu1 - cpu0
            res["server_alive"] = server.alive()
        finally:
            # SIGTERM while the chargers still talk (the meter scenario's metering goes on).
            res["stop_s"] = server.stop()
            if clients is not None:
                clients.quit()
            if target == "loadstar" and (tmp / "loadstar.db").exists():
                with sqlite3.connect(tmp / "loadstar.db") as db:
                    res["left_pending"] = db.execute(
                        "SELECT count(*) FROM commands WHERE status = 'pending'").fetchone()[0]
            res["warnings"] = server.warnings()
            if args.logs:
                Path(args.logs).mkdir(parents=True, exist_ok=True)
                dest = Path(args.logs) / f"{scenario}-{target}.log"
                dest.write_bytes(server.log_path.read_bytes())
            LIVE.remove(server)
    return res


# -- the table -----------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def triple(xs: list[float], scale: float = 1000.0) -> tuple[float, float, float]:
    return tuple(scale * pct(xs, q) for q in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, tuple):
        return "/".join(fmt(x, nd) for x in v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.{nd}f}"
    return str(v)


def ratio(a: Any, b: Any) -> str:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return "/".join(ratio(x, y) for x, y in zip(a, b, strict=True))
    try:
        if isinstance(a, int | float) and isinstance(b, int | float) and b and \
                not (math.isnan(a) or math.isnan(b)):
            return f"{a / b:.1f}"
    except TypeError:
        pass
    return "-"


def rows(res: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, Any, int]]:
    """(label, value, decimals) for one run."""
    up, win = res["up"], res["window"]
    storm = res["scenario"] == "storm"
    seen = win if storm else up
    frames = win["sent"] + win["received"]
    boot = (win if storm else up)["rtt"].get("BootNotification", [])
    out: list[tuple[str, Any, int]] = [
        ("connected/booted", f"{seen['connected']}/{seen['booted']} of {args.chargers}", 0),
        ("bring-up s (connect phase)", res["up_s"], 1),
        ("window s", res["window_s"], 1),
        ("frames/s (window)", frames / res["window_s"], 1),
        ("BootNotification rtt p50/95/99 ms", triple(boot), 1),
    ]
    if res["scenario"] == "meter":
        mv = win["rtt"].get("MeterValues", [])
        changes, follow = win["changes"], win["mv_to_scp"]
        out += [
            ("MeterValues rtt p50/95/99 ms", triple(mv), 1),
            ("MeterValues sent (window)", len(mv), 0),
            ("MV->SetChargingProfile p50/95/99 s", triple(follow, 1.0), 2),
            ("demand changes / followed by SCP", f"{changes}/{len(follow)}", 0),
            ("reclaim -> raise p50/95/99 ms", triple(win["reclaim"]), 1),
            ("reclaims / raised", f"{win['reclaims']}/{len(win['reclaim'])}", 0),
            ("SetChargingProfile received", win["server_calls"].get("SetChargingProfile", 0), 0),
        ]
    elif not storm:
        out.append(("Heartbeat rtt p50/95/99 ms", triple(win["rtt"].get("Heartbeat", [])), 1))
    if storm:
        rb = win["reboot_s"]
        out += [
            ("storm: all re-booted after s",
             max(rb) if rb and not win["missing"] else float("nan"), 1),
            ("storm: re-boot p50/95/99 s", triple(rb, 1.0), 1),
            ("storm: not back within window", win["missing"], 0),
        ]
    cpu_ms = 1000 * res["cpu_s"] / frames if frames else float("nan")
    out += [
        ("server CPU s (window)", res["cpu_s"], 2),
        ("server CPU ms/frame", cpu_ms, 3),
        ("server CPU s (connect phase)", res["up_cpu_s"], 2),
        ("server RSS KiB/connection", res["rss_per_conn_kib"], 1),
        ("server calls to chargers (window)", sum(win["server_calls"].values()), 0),
        ("SIGTERM under load -> exit s", res.get("stop_s", float("nan")), 2),
        ("commands left pending after exit", res.get("left_pending", "-"), 0),
        ("timeouts (connect + window)",
         sum(up["timeouts"].values()) + sum(win["timeouts"].values()), 0),
        ("errors (connect + window)", sum(up["errors"].values()) + sum(win["errors"].values()),
         0),
    ]
    return out


def print_table(scenario: str, results: dict[str, dict[str, Any]],
                args: argparse.Namespace) -> None:
    targets = list(results)
    per = {t: rows(results[t], args) for t in targets}
    first = per[targets[0]]
    print()
    print(f"== {scenario}: {args.chargers} chargers, OCPP {args.protocol}, "
          f"{args.processes} client processes, window {args.duration:g} s, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    head = f"{'':<38}" + "".join(f"{t:>22}" for t in targets)
    if len(targets) == 2:
        head += f"{'loadstar/relay':>20}"
    print(head)
    for i, (label, _, nd) in enumerate(first):
        vals = [per[t][i][1] for t in targets]
        line = f"{label:<38}" + "".join(f"{fmt(v, nd):>22}" for v in vals)
        if len(targets) == 2 and not label.startswith(("connected", "timeouts", "errors",
                                                       "demand", "storm: not")):
            line += f"{ratio(vals[0], vals[1]):>20}"
        print(line)
    for t in targets:
        r = results[t]
        errs = r["up"]["errors"] + r["window"]["errors"]
        tos = r["up"]["timeouts"] + r["window"]["timeouts"]
        if tos:
            print(f"  {t} timeouts: " + ", ".join(f"{k} {v}" for k, v in tos.most_common(6)))
        if errs:
            print(f"  {t} errors: " + ", ".join(f"{k} {v}" for k, v in errs.most_common(6)))
        if r["warnings"]:
            print(f"  {t} server log (warning+): " + ", ".join(
                f"{k} {v}" for k, v in r["warnings"].most_common(6)))
        if not r.get("server_alive", True):
            print(f"  {t}: the server died during the window")
        if r["up"]["lost"] or r["window"]["lost"]:
            print(f"  {t}: a client process missed its deadline and was killed")
    sys.stdout.flush()


def main() -> None:
    """Parse the options, run each scenario against each target, print the tables."""
    ap = argparse.ArgumentParser(prog="python -m bench.ocpp_load",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--scenario", choices=["idle", "meter", "storm", "all"], default="all")
    ap.add_argument("--duration", type=float, default=60.0,
                    help="seconds of the measured window (storm: its deadline)")
    ap.add_argument("--processes", type=int, default=2, help="client processes")
    ap.add_argument("--protocol", choices=["1.6", "2.0.1"], default="1.6")
    ap.add_argument("--target", choices=["loadstar", "relay", "both"], default="both")
    ap.add_argument("--site-kw", type=float, default=150.0,
                    help="max_power_kw of each site of 20 x 22 kW chargers")
    ap.add_argument("--heartbeat", type=int, default=30, help="heartbeat interval, s")
    ap.add_argument("--meter-interval", type=float, default=10.0)
    ap.add_argument("--connect-timeout", type=float, default=180.0,
                    help="deadline for connecting and booting everyone, s")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds between bring-up and the window")
    ap.add_argument("--call-timeout", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=100,
                    help="connects+boots in flight per client process")
    ap.add_argument("--same-address", action="store_true",
                    help="all chargers from 127.0.0.1 instead of one loopback address each")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--logs", metavar="DIR", help="keep the servers' logs in DIR")
    args = ap.parse_args()
    if not 1 <= args.chargers <= 20000:
        ap.error("--chargers must be 1..20000")
    if not 1 <= args.duration <= 3600:
        ap.error("--duration must be 1..3600 s")
    raise_nofile()
    scenarios = ["idle", "meter", "storm"] if args.scenario == "all" else [args.scenario]
    targets = ["loadstar", "relay"] if args.target == "both" else [args.target]

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for scenario in scenarios:
            results = {}
            for target in targets:
                print(f"-- {scenario} / {target} ...", file=sys.stderr, flush=True)
                results[target] = run_one(target, scenario, args)
            print_table(scenario, results, args)
    except KeyboardInterrupt:
        print("interrupted: stopping the server and the clients", file=sys.stderr)
        sys.exit(130)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
