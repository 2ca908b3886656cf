"""The client side of `bench.ocpp_load`: many lightweight OCPP chargers in one process.

Plain `websockets` + `json`, no project code (not `simulators`, not `csms`), so what is measured
is the server. One worker process runs one asyncio loop with many `Charger`s and takes orders
from the bench over a multiprocessing pipe:

  ("up", deadline_s)     connect, boot, StatusNotification (and in `meter` start a transaction);
                         then keep heartbeating / metering. Answers counts and connect-phase stats.
  ("reset",)             forget the stats: a measured window starts.
  ("collect",)           the stats since the last reset, and how many are connected and booted.
  ("storm", deadline_s)  every charger drops its socket at once (abort, no close handshake),
                         reconnects and re-boots; answers each charger's time to re-booted.
  ("quit",)              close everything and end.

Each charger answers every server CALL with a minimal valid answer and honours charging
profiles: the power it reports is min(its car's demand, the limit in force from the profiles
it accepted), so the server's closed loop sees it follow.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import resource
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

VOLTAGE_V = 230.0
DEMANDS_W = (3700.0, 7400.0, 11000.0, 16500.0, 22000.0)  # what a car may want to draw
DEMAND_CHANGE_P = 0.15  # per meter tick: a car changes what it wants (~every 67 s at 10 s)
CHANGE_MIN_W = 100.0  # a reported power that moved less than this did not change
# A limit lowered to this far above the draw is a lend (the server's lend margin is 1 kW,
# rounded down to its 0.1 A steps).
LENT_GAP_W = (800.0, 1100.0)
# DESIGN section 3: a car drawing within AT_LIMIT_W of its limit draws it; one that then falls
# WELL_BELOW_W under it has its headroom lent at once (and a lent car that falls that much
# more is lent less).
AT_LIMIT_W = 500.0
WELL_BELOW_W = 1000.0


@dataclass
class WorkerSpec:
    url: str  # ws://127.0.0.1:PORT/ocpp
    ids: list[str]
    indexes: list[int]  # global charger numbers, for the source address
    protocol: str  # "1.6" | "2.0.1"
    scenario: str  # idle | meter | storm
    meter_interval_s: float = 10.0
    call_timeout_s: float = 30.0
    concurrency: int = 100  # handshakes + boots in flight per worker
    own_address: bool = True  # each charger connects from its own 127.x.y.z
    seed: int = 0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def source_address(index: int) -> str:
    """A loopback address of its own for charger `index` (127.1.0.1, 127.1.0.2, ...)."""
    return f"127.{1 + index // 62500}.{(index // 250) % 250}.{index % 250 + 1}"


def raise_nofile() -> None:
    """Soft open-files limit up to the hard one: a thousand sockets need more than 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                    else max(soft, 65536), hard))


class Stats:
    """What one worker saw since the last reset: frames, round trips, reactions, failures."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sent = 0
        self.received = 0
        self.rtt: dict[str, list[float]] = defaultdict(list)
        self.mv_to_scp: list[float] = []
        # A lent car (its limit lowered towards its draw) ramps up: until its limit is raised.
        self.reclaim: list[float] = []
        self.reclaims = 0
        self.server_calls: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.changes = 0  # meter values whose demand-driven power changed

    def dump(self) -> dict[str, Any]:
        return {"sent": self.sent, "received": self.received, "rtt": dict(self.rtt),
                "mv_to_scp": self.mv_to_scp, "reclaim": self.reclaim,
                "reclaims": self.reclaims, "server_calls": dict(self.server_calls),
                "timeouts": dict(self.timeouts), "errors": dict(self.errors),
                "changes": self.changes}


class CallRefused(Exception):
    """The server answered a CALL with a CALLERROR."""


@dataclass
class Profile:
    stack: int
    unit: str  # "A" | "W"
    periods: list[tuple[float, float, int]]  # (startPeriod s, limit, numberPhases)
    start: float  # epoch s the schedule starts
    valid_to: float  # epoch s; inf when open
    profile_id: int

    def limit_w(self, at: float) -> float:
        if at > self.valid_to:
            return math.inf
        limit, phases = self.periods[0][1], self.periods[0][2]
        for start, lim, ph in self.periods:
            if at - self.start >= start:
                limit, phases = lim, ph
        return limit * VOLTAGE_V * phases if self.unit == "A" else limit


def _epoch(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


@dataclass
class Charger:
    cp_id: str
    index: int
    worker: Worker
    ws: ClientConnection | None = None
    booted: bool = False
    hb_interval_s: float = 30.0
    demand_w: float = 11000.0
    reported_w: float = 0.0
    energy_wh: float = 0.0
    tx_id: Any = None
    seq_no: int = 0
    pending_change_at: float | None = None  # perf_counter of the first unanswered change
    lent: bool = False  # its limit was lowered while it drew well below it
    pending_reclaim_at: float | None = None  # perf_counter of a lent car's ramp-up
    profiles: dict[tuple[int, str], Profile] = field(default_factory=dict)
    waiting: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def v16(self) -> bool:
        return self.worker.spec.protocol == "1.6"

    # -- the socket ----------------------------------------------------------------------------

    async def connect(self) -> None:
        spec = self.worker.spec
        kwargs: dict[str, Any] = {}
        if spec.own_address:
            kwargs["local_addr"] = (source_address(self.index), 0)
        self.ws = await connect(
            f"{spec.url}/{self.cp_id}", subprotocols=[f"ocpp{spec.protocol}"],  # type: ignore[list-item]
            compression=None, proxy=None, open_timeout=spec.call_timeout_s,
            ping_interval=None, close_timeout=2, max_queue=64, **kwargs)
        self.tasks.append(asyncio.create_task(self._read(self.ws)))

    async def _read(self, ws: ClientConnection) -> None:
        stats = self.worker.stats
        try:
            async for text in ws:
                stats.received += 1
                msg = json.loads(text)
                if msg[0] == 2:
                    await self._answer(ws, msg)
                else:
                    fut = self.waiting.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except ConnectionClosed:
            pass
        finally:
            for fut in self.waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
                    fut.exception()  # its caller may be gone already (the server stopped)
            self.waiting.clear()

    async def call(self, label: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL and wait for its reply; round trip kept under `label`."""
        stats = self.worker.stats
        if self.ws is None:
            raise ConnectionError("not connected")
        uid = uuid.uuid4().hex
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.waiting[uid] = fut
        t0 = time.perf_counter()
        try:
            await self.ws.send(json.dumps([2, uid, action, payload]))
            stats.sent += 1
            reply = await asyncio.wait_for(fut, self.worker.spec.call_timeout_s)
        except TimeoutError:
            self.worker.stats.timeouts[label] += 1
            raise
        finally:
            self.waiting.pop(uid, None)
        stats.rtt[label].append(time.perf_counter() - t0)
        if reply[0] != 3:
            stats.errors[f"{label}: CALLERROR {reply[2]}"] += 1
            raise CallRefused(str(reply[2]))
        return reply[2]

    async def _reply(self, ws: ClientConnection, frame: list[Any]) -> None:
        await ws.send(json.dumps(frame))
        self.worker.stats.sent += 1

    def drop(self) -> None:
        """The network goes away: no close handshake, loops stop."""
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        if self.ws is not None and self.ws.transport is not None:
            self.ws.transport.abort()
        self.ws = None
        self.booted = False

    # -- answering the server ------------------------------------------------------------------

    async def _answer(self, ws: ClientConnection, msg: list[Any]) -> None:
        _, uid, action, payload = msg[:4]
        self.worker.stats.server_calls[action] += 1
        before_w = self.limit_w()
        try:
            answer = self._answer_payload(action, payload)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.worker.stats.errors[f"bad {action}: {type(exc).__name__}"] += 1
            await self._reply(ws, [4, uid, "FormationViolation" if self.v16 else
                                   "FormatViolation", str(exc)[:100], {}])
            return
        if answer is None:
            await self._reply(ws, [4, uid, "NotImplemented", f"{action} not in this bench", {}])
            return
        await self._reply(ws, [3, uid, answer])
        if action == "SetChargingProfile":
            self._profile_taken(before_w)

    def _profile_taken(self, before_w: float) -> None:
        """Time the reactions a new profile completes: to a demand change, to a reclaim."""
        stats, now, after_w = self.worker.stats, time.perf_counter(), self.limit_w()
        if self.pending_change_at is not None:
            stats.mv_to_scp.append(now - self.pending_change_at)
            self.pending_change_at = None
        gap = after_w - self.reported_w
        if after_w < before_w - CHANGE_MIN_W and LENT_GAP_W[0] <= gap <= LENT_GAP_W[1] and \
                self.reported_w < before_w - WELL_BELOW_W:
            # A car well below its limit lowered to just above what it draws: its headroom is
            # lent. A lowering to a new fair share of a car that drew its limit is not a lend,
            # nor is a pause (0 W) of a car that has not drawn yet.
            self.lent = True
        elif after_w > before_w + CHANGE_MIN_W:
            if self.pending_reclaim_at is not None:
                stats.reclaim.append(now - self.pending_reclaim_at)
                self.pending_reclaim_at = None
            self.lent = False

    def _answer_payload(self, action: str, p: dict[str, Any]) -> dict[str, Any] | None:
        if action in ("ChangeConfiguration", "TriggerMessage", "ClearCache"):
            return {"status": "Accepted"}
        if action == "GetConfiguration":
            return {"configurationKey": [
                {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True,
                 "value": "Current,Power"},
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"},
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "24"},
                {"key": "MaxChargingProfilesInstalled", "readonly": True, "value": "8"},
                {"key": "NumberOfConnectors", "readonly": True, "value": "1"},
                {"key": "SupportedFeatureProfiles", "readonly": True,
                 "value": "Core,SmartCharging,RemoteTrigger"},
            ], "unknownKey": []}
        if action == "SetVariables":
            return {"setVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"],
                 "variable": d["variable"]} for d in p["setVariableData"]]}
        if action == "GetVariables":
            values = {"RateUnit": "A,W", "Enabled": "true", "Available": "true",
                      "PeriodsPerSchedule": "24", "ProfileStackLevel": "8", "Entries": "8"}
            return {"getVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"],
                 "variable": d["variable"],
                 "attributeValue": values.get(d["variable"]["name"], "3")}
                for d in p["getVariableData"]]}
        if action == "SetChargingProfile":
            self._take_profile(p)
            return {"status": "Accepted"}
        if action == "ClearChargingProfile":
            self._clear_profiles(p)
            return {"status": "Accepted"}
        if action == "GetCompositeSchedule":
            return self._composite(p)
        if action in ("RemoteStartTransaction", "RemoteStopTransaction", "Reset",
                      "RequestStartTransaction", "RequestStopTransaction", "UnlockConnector",
                      "ChangeAvailability"):
            return {"status": "Rejected"}
        return None

    def _take_profile(self, p: dict[str, Any]) -> None:
        if self.v16:
            connector, cp = int(p["connectorId"]), p["csChargingProfiles"]
            sched, pid = cp["chargingSchedule"], int(cp["chargingProfileId"])
        else:
            connector, cp = int(p["evseId"]), p["chargingProfile"]
            sched, pid = cp["chargingSchedule"][0], int(cp["id"])
        now = time.time()
        periods = [(float(x["startPeriod"]), float(x["limit"]), int(x.get("numberPhases", 3)))
                   for x in sched["chargingSchedulePeriod"]]
        self.profiles[(connector, cp["chargingProfilePurpose"])] = Profile(
            int(cp["stackLevel"]), sched["chargingRateUnit"], periods,
            _epoch(sched.get("startSchedule"), now), _epoch(cp.get("validTo"), math.inf), pid)

    def _clear_profiles(self, p: dict[str, Any]) -> None:
        if self.v16:
            pid, crit = p.get("id"), p
            connector = crit.get("connectorId")
        else:
            pid, crit = p.get("chargingProfileId"), p.get("chargingProfileCriteria") or {}
            connector = crit.get("evseId")
        purpose = crit.get("chargingProfilePurpose")
        for key, prof in list(self.profiles.items()):
            if pid is not None and prof.profile_id != pid:
                continue
            if connector is not None and key[0] != connector:
                continue
            if purpose is not None and key[1] != purpose:
                continue
            del self.profiles[key]

    def limit_w(self, connector: int = 1) -> float:
        """The limit in force on `connector`: its TxProfile, else a TxDefaultProfile (its own,
        else connector 0's), capped by a ChargePointMaxProfile."""
        at = time.time()
        limit = math.inf
        for key in ((connector, "TxProfile"), (connector, "TxDefaultProfile"),
                    (0, "TxDefaultProfile")):
            prof = self.profiles.get(key)
            if prof is not None and prof.valid_to >= at:
                limit = prof.limit_w(at)
                break
        cap = self.profiles.get((0, "ChargePointMaxProfile"))
        return min(limit, cap.limit_w(at)) if cap is not None else limit

    def _composite(self, p: dict[str, Any]) -> dict[str, Any]:
        connector = int(p["connectorId"] if self.v16 else p["evseId"])
        unit = p.get("chargingRateUnit") or "W"
        watts = self.limit_w(connector)
        watts = 22000.0 if math.isinf(watts) else watts
        limit = round(watts / (VOLTAGE_V * 3), 1) if unit == "A" else round(watts, 1)
        schedule = {"chargingRateUnit": unit, "duration": int(p.get("duration", 60)),
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
        if self.v16:
            return {"status": "Accepted", "connectorId": connector, "scheduleStart": now_iso(),
                    "chargingSchedule": schedule}
        return {"status": "Accepted", "schedule": {"evseId": connector,
                                                   "scheduleStart": now_iso(), **schedule}}

    # -- talking to the server -----------------------------------------------------------------

    async def boot(self) -> None:
        if self.v16:
            payload: dict[str, Any] = {"chargePointVendor": "Bench", "chargePointModel": "Load-1",
                                       "firmwareVersion": "1.0"}
        else:
            payload = {"reason": "PowerUp", "chargingStation": {
                "vendorName": "Bench", "model": "Load-1", "firmwareVersion": "1.0"}}
        answer = await self.call("BootNotification", "BootNotification", payload)
        if answer.get("status") != "Accepted":
            self.worker.stats.errors[f"boot {answer.get('status')}"] += 1
            raise CallRefused(f"boot {answer.get('status')}")
        self.hb_interval_s = float(answer.get("interval") or 30)
        self.booted = True

    async def status(self, connector: int, status: str) -> None:
        if self.v16:
            await self.call("StatusNotification", "StatusNotification", {
                "connectorId": connector, "errorCode": "NoError", "status": status,
                "timestamp": now_iso()})
        else:
            await self.call("StatusNotification", "StatusNotification", {
                "timestamp": now_iso(), "evseId": max(1, connector), "connectorId": 1,
                "connectorStatus": {"Charging": "Occupied", "Preparing": "Occupied"}.get(
                    status, status)})

    def _meter_value(self) -> list[dict[str, Any]]:
        if self.v16:
            return [{"timestamp": now_iso(), "sampledValue": [
                {"value": f"{self.energy_wh:.1f}", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh", "context": "Sample.Periodic"},
                {"value": f"{self.reported_w:.1f}", "measurand": "Power.Active.Import",
                 "unit": "W", "context": "Sample.Periodic"}]}]
        return [{"timestamp": now_iso(), "sampledValue": [
            {"value": round(self.energy_wh, 1), "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}, "context": "Sample.Periodic"},
            {"value": round(self.reported_w, 1), "measurand": "Power.Active.Import",
             "unitOfMeasure": {"unit": "W"}, "context": "Sample.Periodic"}]}]

    async def start_transaction(self) -> None:
        self.energy_wh = float(self.worker.rng.randint(0, 50000))
        if self.v16:
            await self.status(1, "Preparing")
            answer = await self.call("StartTransaction", "StartTransaction", {
                "connectorId": 1, "idTag": "BENCH", "meterStart": int(self.energy_wh),
                "timestamp": now_iso()})
            self.tx_id = answer["transactionId"]
            await self.status(1, "Charging")
        else:
            await self.status(1, "Occupied")
            self.tx_id, self.seq_no = str(uuid.uuid4()), 0
            await self.call("StartTransaction", "TransactionEvent", {
                "eventType": "Started", "timestamp": now_iso(), "seqNo": 0,
                "triggerReason": "Authorized", "transactionInfo": {
                    "transactionId": self.tx_id, "chargingState": "Charging"},
                "evse": {"id": 1, "connectorId": 1},
                "idToken": {"idToken": "BENCH", "type": "ISO14443"},
                "meterValue": self._meter_value()})

    async def meter_once(self, interval_s: float) -> None:
        """One periodic sample: the car may change what it wants; report what it draws."""
        rng = self.worker.rng
        demand_changed = False
        if rng.random() < DEMAND_CHANGE_P:
            new = rng.choice(DEMANDS_W)
            demand_changed = new != self.demand_w
            self.demand_w = new
        limit = self.limit_w()
        power = min(self.demand_w, limit)
        self.energy_wh += self.reported_w * interval_s / 3600.0
        # The changes after which DESIGN section 3 asks for a new profile for this car: it
        # fell well below a limit it drew (lend), a lent car falls further (lend more), or a
        # lent car wants more (reclaim). A car that draws more or less within its limit, or
        # less by under the margin, needs none.
        fell = self.reported_w >= limit - AT_LIMIT_W and power < limit - WELL_BELOW_W
        lent_less = self.lent and power <= self.reported_w - WELL_BELOW_W
        reclaim = self.lent and self.demand_w > power + CHANGE_MIN_W
        self.reported_w = power
        if demand_changed and reclaim and self.pending_reclaim_at is None:
            # A lent car wants more than its lent limit: the server should give it back.
            self.worker.stats.reclaims += 1
            self.pending_reclaim_at = time.perf_counter()
        if demand_changed and (fell or lent_less or reclaim):
            # The car's wish moved what it draws: the server should re-plan and tell it.
            self.worker.stats.changes += 1
            if self.pending_change_at is None:
                self.pending_change_at = time.perf_counter()
        if self.v16:
            await self.call("MeterValues", "MeterValues", {
                "connectorId": 1, "transactionId": self.tx_id, "meterValue": self._meter_value()})
        else:
            self.seq_no += 1
            await self.call("MeterValues", "TransactionEvent", {
                "eventType": "Updated", "timestamp": now_iso(), "seqNo": self.seq_no,
                "triggerReason": "MeterValuePeriodic", "transactionInfo": {
                    "transactionId": self.tx_id, "chargingState": "Charging"},
                "evse": {"id": 1, "connectorId": 1}, "meterValue": self._meter_value()})

    async def _every(self, interval_s: float, what: Any) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.worker.rng.uniform(0, interval_s))
        due = loop.time()
        while True:
            try:
                await what()
            except (TimeoutError, CallRefused):
                pass  # counted where it happened
            except (ConnectionError, ConnectionClosed):
                self.worker.stats.errors["lost connection"] += 1
                return
            due += interval_s
            await asyncio.sleep(max(0.0, due - loop.time()))

    def start_loops(self) -> None:
        spec = self.worker.spec
        self.tasks.append(asyncio.create_task(self._every(
            self.hb_interval_s, lambda: self.call("Heartbeat", "Heartbeat", {}))))
        if spec.scenario == "meter":
            self.tasks.append(asyncio.create_task(self._every(
                spec.meter_interval_s, lambda: self.meter_once(spec.meter_interval_s))))

    async def bring_up(self, deadline: float, *, transaction: bool) -> bool:
        """Connect and boot (retrying until `deadline`), report status, maybe start a tx."""
        stats = self.worker.stats
        loop = asyncio.get_running_loop()
        delay = 0.5
        while loop.time() < deadline:
            try:
                async with self.worker.gate:
                    if self.ws is None:
                        await self.connect()
                    while not self.booted:
                        try:
                            await self.boot()
                        except CallRefused:
                            await asyncio.sleep(1.0)
                        if loop.time() >= deadline:
                            return False
                await self.status(0, "Available")
                if transaction:
                    if self.tx_id is None:
                        await self.start_transaction()
                else:
                    await self.status(1, "Available")
                return True
            except InvalidStatus as exc:
                stats.errors[f"connect: HTTP {exc.response.status_code}"] += 1
            except TimeoutError:
                if self.ws is None:  # the handshake; a CALL's timeout is already counted
                    stats.errors["connect: timeout"] += 1
            except (OSError, ConnectionError, ConnectionClosed, CallRefused) as exc:
                stats.errors[f"connect/boot: {type(exc).__name__}"] += 1
            if self.ws is not None and (not self.booted
                                        or self.ws.protocol.state.name != "OPEN"):
                self.drop()
            await asyncio.sleep(delay * (0.5 + self.worker.rng.random()))
            delay = min(delay * 2, 10.0)
        return False


class Worker:
    def __init__(self, spec: WorkerSpec, pipe: Connection) -> None:
        self.spec = spec
        self.pipe = pipe
        self.stats = Stats()
        self.rng = random.Random(spec.seed)
        self.gate = asyncio.Semaphore(spec.concurrency)
        self.chargers = [Charger(cp, i, self, demand_w=self.rng.choice(DEMANDS_W))
                         for cp, i in zip(spec.ids, spec.indexes, strict=True)]

    def counts(self) -> dict[str, int]:
        return {"connected": sum(1 for c in self.chargers if c.ws is not None
                                 and c.ws.protocol.state.name == "OPEN"),
                "booted": sum(1 for c in self.chargers if c.booted)}

    async def up(self, deadline_s: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        transaction = self.spec.scenario == "meter"
        oks = await asyncio.gather(*(c.bring_up(deadline, transaction=transaction)
                                     for c in self.chargers))
        for c, ok in zip(self.chargers, oks, strict=True):
            if ok:
                c.start_loops()
        return {**self.counts(), "ready": sum(oks), "stats": self.stats.dump()}

    async def storm(self, deadline_s: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        for c in self.chargers:
            c.drop()
        t0 = time.perf_counter()

        async def back(c: Charger) -> float | None:
            ok = await c.bring_up(deadline, transaction=False)
            if not ok:
                return None
            took = time.perf_counter() - t0
            c.start_loops()
            return took

        times = await asyncio.gather(*(back(c) for c in self.chargers))
        return {**self.counts(), "reboot_s": [t for t in times if t is not None],
                "missing": sum(1 for t in times if t is None), "stats": self.stats.dump()}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                cmd = await loop.run_in_executor(None, self.pipe.recv)
            except (EOFError, OSError):
                break  # the bench is gone
            if cmd[0] == "up":
                self.pipe.send(await self.up(cmd[1]))
            elif cmd[0] == "reset":
                self.stats.reset()
                self.pipe.send({"ok": True})
            elif cmd[0] == "collect":
                self.pipe.send({**self.counts(), "stats": self.stats.dump()})
            elif cmd[0] == "storm":
                self.pipe.send(await self.storm(cmd[1]))
            elif cmd[0] == "quit":
                break
        for c in self.chargers:
            for task in c.tasks:
                task.cancel()
        await asyncio.gather(*(c.ws.close() for c in self.chargers if c.ws is not None),
                             return_exceptions=True)
        try:
            self.pipe.send({"bye": True})
        except (OSError, BrokenPipeError):
            pass


def worker_main(spec: WorkerSpec, pipe: Connection) -> None:
    """Entry point of one client process."""
    raise_nofile()
    try:
        asyncio.run(Worker(spec, pipe).run())
    except KeyboardInterrupt:
        pass
