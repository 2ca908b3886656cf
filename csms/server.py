"""The OCPP websocket server: refuse before the upgrade, pick the subprotocol, one task each."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
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
from csms.security import verify_password
from csms.store import Store

log = structlog.get_logger("csms.server")

ADAPTERS: dict[str, ModuleType] = {v16.SUBPROTOCOL: v16, v201.SUBPROTOCOL: v201}


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
    cp_id = unquote(raw)
    return cp_id if 0 < len(cp_id) <= 48 else None


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
        )
        log.info("ocpp_listening", host=self.config.host, port=self.port,
                 tls=self._server is not None and self.ssl_context() is not None)

    async def stop(self) -> None:
        """Stop accepting, close every charger socket, and wait for their tasks."""
        if self._server is None:
            return
        self._server.close(close_connections=False)
        for conn in self.registry.all():
            await conn.close("shutdown")
        await self._server.wait_closed()
        self._server = None

    def _select_subprotocol(self, connection: ServerConnection,
                            offered: list[str]) -> str | None:
        for proto in self.config.subprotocols:
            if proto in offered:
                return proto
        return None

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        cp_id = charge_point_id(request.path)
        if cp_id is None:
            return _refuse(connection, HTTPStatus.NOT_FOUND,
                           "Connect to /ocpp/{chargePointId}")
        offered = offered_subprotocols(request.headers)
        if not any(p in offered for p in self.config.subprotocols):
            log.warning("refused_no_subprotocol", cp_id=cp_id, offered=offered)
            return _refuse(connection, HTTPStatus.BAD_REQUEST,
                           "No supported OCPP subprotocol offered; this server speaks "
                           + " and ".join(self.config.subprotocols))
        if self.config.require_auth:
            creds = basic_credentials(request.headers)
            stored = await self.store.get_password_hash(cp_id)
            ok = (
                creds is not None
                and creds[0] == cp_id
                and await asyncio.to_thread(verify_password, creds[1], stored)
            )
            if not ok:
                log.warning("refused_unauthorized", cp_id=cp_id, had_credentials=bool(creds))
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
