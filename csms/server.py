"""The OCPP websocket server: refuse before the upgrade, pick the subprotocol, one task each."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
import time
from http import HTTPStatus
from types import ModuleType
from urllib.parse import unquote

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from csms.central import Central
from csms.clock import Clock
from csms.config import OcppConfig
from csms.connection import ChargerConnection, Recorder
from csms.ocpp import v16, v201
from csms.ratelimit import BucketsByKey
from csms.security import PasswordChecker
from csms.store import Store

log = structlog.get_logger("csms.server")

ADAPTERS: dict[str, ModuleType] = {v16.SUBPROTOCOL: v16, v201.SUBPROTOCOL: v201}


# OCPP 2.0.1 identifierString, max 48 (1.6 chargeBoxIdentity is CiString48): printable ASCII
# without spaces, slashes or control characters, so an id is safe in logs, tables and paths.
_CP_ID = re.compile(r"[A-Za-z0-9*\-_=:+|@.]{1,48}")


def charge_point_id(path: str) -> str | None:
    """The charge point id in `/ocpp/{id}` or `/{id}`, URL-decoded; None if there is none."""
    path = path.split("?", 1)[0].rstrip("/")
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "ocpp":
        raw = parts[1]
    elif len(parts) == 1 and parts[0] != "ocpp":
        raw = parts[0]
    else:
        return None
    return unquote(raw, errors="replace")


def id_problem(cp_id: str) -> str | None:
    """Why `cp_id` is not an identity OCPP allows, or None when it is."""
    if not _CP_ID.fullmatch(cp_id):
        return ("a charge point id is 1 to 48 characters of A-Z a-z 0-9 * - _ = : + | @ .")
    if ".." in cp_id or cp_id == ".":
        return "a charge point id may not be '.' or contain '..'"
    return None


def offered_subprotocols(headers: Headers) -> list[str]:
    """Subprotocols a client offers, in its order."""
    return [p.strip() for h in headers.get_all("Sec-WebSocket-Protocol")
            for p in h.split(",") if p.strip()]


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """(username, password) from an HTTP Basic Authorization header, if well formed."""
    value = headers.get("Authorization")
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


CLOSE_TIMEOUT_S = 2.0
# Headers a request may carry once: two Authorization headers are an attack, not a retry.
_SINGLE_HEADERS = ("Authorization", "Host")


def _address(connection: ServerConnection) -> str:
    peer = connection.remote_address
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _refuse(connection: ServerConnection, status: HTTPStatus, text: str,
            **headers: str) -> Response:
    response = connection.respond(status, text + "\n")
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


class Registry:
    """Live connections by charge point id; a newer connection replaces an older one."""

    def __init__(self) -> None:
        self._by_id: dict[str, ChargerConnection] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, cp_id: str) -> ChargerConnection | None:
        return self._by_id.get(cp_id)

    def all(self) -> list[ChargerConnection]:
        return list(self._by_id.values())

    async def add(self, conn: ChargerConnection) -> None:
        old = self._by_id.get(conn.cp_id)
        self._by_id[conn.cp_id] = conn
        if old is not None:
            old.replaced = True
            log.info("connection_replaced")
            # A dead old socket may take the whole close timeout; the new one need not wait.
            task = asyncio.create_task(old.close("replaced by a new connection"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def remove(self, conn: ChargerConnection) -> None:
        if self._by_id.get(conn.cp_id) is conn:
            del self._by_id[conn.cp_id]


class OcppServer:
    """Accepts charger websockets and runs a ChargerConnection for each."""

    def __init__(self, config: OcppConfig, central: Central, store: Store, clock: Clock,
                 registry: Registry, record: Recorder) -> None:
        self.config = config
        self.central = central
        self.store = store
        self.clock = clock
        self.registry = registry
        self.record = record
        self._server: Server | None = None
        self.connected = asyncio.Event()
        self._upgrades = BucketsByKey(config.upgrades_per_address_per_s, config.upgrade_burst)
        self._failed_auth = BucketsByKey(config.failed_auth_per_address_per_min / 60.0,
                                         config.failed_auth_burst)
        self._failed_auth_all_ids = BucketsByKey(
            config.failed_auth_per_address_all_ids_per_min / 60.0,
            config.failed_auth_all_ids_burst)
        self._passwords = PasswordChecker(config.auth_workers, config.max_pending_auth)
        self._auth_pending: dict[str, int] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS 1.2+ when a certificate chain and key are configured (security profile 2)."""
        if not (self.config.tls_cert and self.config.tls_key):
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return ctx

    async def start(self) -> None:
        """Listen on the configured host and port (port 0 picks a free one)."""
        self._server = await serve(
            self._serve_connection,
            self.config.host,
            self.config.port,
            subprotocols=list(self.config.subprotocols),  # type: ignore[arg-type]
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ssl=self.ssl_context(),
            ping_interval=self.config.ping_interval_s,
            ping_timeout=self.config.ping_interval_s,
            # The OCPP limit answers with a CALLERROR; the socket limit is a last resort.
            max_size=max(16 * self.config.max_frame_bytes, 1 << 20),
            server_header="Loadstar",
            # A charger that does not answer our close (or is not read: throttled) within this
            # is cut off, so shutdown and replacement stay quick.
            close_timeout=CLOSE_TIMEOUT_S,
        )
        log.info("ocpp_listening", host=self.config.host, port=self.port,
                 tls=self._server is not None and self.ssl_context() is not None)

    async def stop(self) -> None:
        """Stop accepting, close every charger socket, and wait for their tasks."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        # All at once: one charger that does not answer the close costs its close_timeout,
        # not that times the number of chargers.
        await asyncio.gather(*(conn.close("shutdown") for conn in self.registry.all()))
        await self._server.wait_closed()
        self._server = None
        self._passwords.close()

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: list[str]) -> str | None:
        for proto in self.config.subprotocols:
            if proto in offered:
                return proto
        return None

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        now = time.monotonic()
        address = _address(connection)
        if not self._upgrades.try_take(address, now):
            log.warning("refused_upgrade_rate", remote=address)
            return _refuse(connection, HTTPStatus.TOO_MANY_REQUESTS,
                           "Too many connection attempts from this address", Retry_After="5")
        for name in _SINGLE_HEADERS:
            if len(request.headers.get_all(name)) > 1:
                log.warning("refused_duplicate_header", header=name, remote=address)
                return _refuse(connection, HTTPStatus.BAD_REQUEST, f"More than one {name} header")
        cp_id = charge_point_id(request.path)
        if cp_id is None:
            return _refuse(connection, HTTPStatus.NOT_FOUND,
                           "Connect to /ocpp/{chargePointId}")
        problem = id_problem(cp_id)
        if problem is not None:
            # repr: the id may hold control characters that must not reach the log as such.
            log.warning("refused_bad_charge_point_id", cp_id_repr=repr(cp_id)[:120],
                        remote=address)
            return _refuse(connection, HTTPStatus.BAD_REQUEST, problem)
        offered = offered_subprotocols(request.headers)
        if not any(p in offered for p in self.config.subprotocols):
            log.warning("refused_no_subprotocol", cp_id=cp_id, offered=offered)
            return _refuse(connection, HTTPStatus.BAD_REQUEST,
                           "No supported OCPP subprotocol offered; this server speaks "
                           + " and ".join(self.config.subprotocols))
        if self.config.require_auth:
            return await self._authenticate(connection, cp_id, address, request.headers)
        return None

    async def _authenticate(self, connection: ServerConnection, cp_id: str, address: str,
                            headers: Headers) -> Response | None:
        """Check Basic auth; refuse addresses that keep failing before hashing anything."""
        now, guess = time.monotonic(), f"{address}|{cp_id}"
        if not (self._failed_auth.allows(guess, now)
                and self._failed_auth_all_ids.allows(address, now)):
            log.warning("refused_auth_rate", cp_id=cp_id, remote=address)
            return _refuse(connection, HTTPStatus.TOO_MANY_REQUESTS,
                           "Too many failed authentications from this address",
                           Retry_After="60")
        if self._auth_pending.get(address, 0) >= self.config.max_pending_auth_per_address:
            log.warning("refused_auth_rate", cp_id=cp_id, remote=address, pending=True)
            return _refuse(connection, HTTPStatus.TOO_MANY_REQUESTS,
                           "Too many authentications in progress from this address",
                           Retry_After="5")
        creds = basic_credentials(headers)
        self._auth_pending[address] = self._auth_pending.get(address, 0) + 1
        try:
            if creds is None or creds[0] != cp_id:
                ok: bool | None = False
            else:
                ok = await self._passwords.verify(cp_id, creds[1],
                                                  await self.store.get_password_hash(cp_id))
        finally:
            left = self._auth_pending.pop(address) - 1
            if left:
                self._auth_pending[address] = left
        if ok is None:
            log.warning("refused_auth_busy", cp_id=cp_id, remote=address)
            return _refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                           "Too many authentications in progress", Retry_After="5")
        if not ok:
            self._failed_auth.take(guess, time.monotonic())
            self._failed_auth_all_ids.take(address, time.monotonic())
            log.warning("refused_unauthorized", cp_id=cp_id, had_credentials=bool(creds),
                        remote=address)
            return _refuse(connection, HTTPStatus.UNAUTHORIZED, "Unauthorized",
                           WWW_Authenticate='Basic realm="Loadstar OCPP"')
        return None

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = charge_point_id(ws.request.path)
        adapter = ADAPTERS.get(ws.subprotocol or "")
        if cp_id is None or adapter is None:
            await ws.close(code=1002, reason="no OCPP subprotocol")
            return
        with structlog.contextvars.bound_contextvars(cp_id=cp_id):
            conn = ChargerConnection(ws, cp_id, adapter, self.central, self.store, self.config,
                                     self.clock, self.record)
            await self.registry.add(conn)
            log.info("charger_connected", protocol=adapter.SUBPROTOCOL,
                     remote=str(ws.remote_address))
            try:
                await conn.run()
            finally:
                self.registry.remove(conn)
                log.info("charger_disconnected", replaced=conn.replaced)
