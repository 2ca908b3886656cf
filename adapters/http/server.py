"""Uvicorn serving the app on the caller's event loop, on a socket bound here (so that a port
in use is an OSError for `serve` to report, and port 0 works)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger("adapters.http.server")

GRACEFUL_S = 5.0


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handlers: `loadstar serve` owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (OSError if it cannot be)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class HttpServer:
    """One uvicorn server as a task: start() binds and waits until it serves, stop() ends it."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._server = _Server(uvicorn.Config(
            app, host=host, port=port, lifespan="off", log_config=None, access_log=False,
            ws="none", timeout_graceful_shutdown=GRACEFUL_S, server_header=False))
        self.task: asyncio.Task[None] | None = None
        self.stopping = False

    async def start(self) -> None:
        """Bind (OSError if the port is taken) and serve; returns once it accepts."""
        sock = bind(self.host, self.port)
        self.task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self.task.done():
                await self.task
                raise RuntimeError("the HTTP server ended while starting")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, let requests under way finish (bounded), close."""
        self.stopping = True
        if self.task is None:
            return
        self._server.should_exit = True
        await asyncio.wait([self.task])
