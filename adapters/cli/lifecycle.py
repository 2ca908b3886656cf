"""`loadstar serve`: run Loadstar until a signal or a fatal failure, and end the process cleanly
either way.

`run` is the one place that starts, and stops, what serves: the core built by
`csms.service.Loadstar` (store, OCPP server, planner, commands). Whatever else serves on the
same event loop (the HTTP app of `adapters.http`) is started after the core and stopped before
it, here, under the same signals and shutdown timeout.

Every fatal ending prints one `loadstar: ...` line on stderr and gives a non-zero exit code;
none leaves the process hanging on the store's worker thread.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from typing import NoReturn

import structlog

from adapters.http.app import create_app
from adapters.http.server import HttpServer
from csms import heap
from csms.clock import Clock
from csms.config import Config
from csms.service import Loadstar, StartupError, error_text

log = structlog.get_logger("adapters.cli.lifecycle")

SHUTDOWN_TIMEOUT_S = 10.0


def say(message: str) -> None:
    """One line for the operator on stderr."""
    print(f"loadstar: {message}", file=sys.stderr, flush=True)


def exit_now(message: str, code: int) -> NoReturn:
    """Say why and end the process at once: a stuck store thread or task cannot hold it."""
    say(message)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


async def run(config: Config, clock: Clock | None = None,
              shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S) -> int:
    """Start Loadstar, serve until SIGTERM/SIGINT or a fatal failure, stop; the exit code."""
    service = Loadstar(config, clock=clock)
    # Signals are ours from before the start: one that comes while the core or the HTTP app
    # starts (after `ocpp_listening`) stops what started, instead of killing the process.
    stopping = False
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            log.error("exit_at_once", signal=sig.name)
            exit_now(f"{sig.name} during shutdown: exiting at once", 128 + sig.value)
        # Marked here, not when run() resumes: a second signal may come before that.
        stopping = True
        log.info("signal_received", signal=sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await service.start()
    except StartupError as e:
        say(str(e))
        return 1
    except Exception as e:
        # A bug, not an operator's mistake: keep the traceback in the log, still exit cleanly.
        log.exception("start_failed")
        say(f"cannot start: {type(e).__name__}: {e}")
        return 1
    http: HttpServer | None = None
    if config.http.enabled:
        http = await _start_http(service)
        if http is None:
            return 1
    # Everything loaded so far (ortools, the store, the sites, the app) lives as long as the
    # process: keep it out of the cyclic collector, whose full passes over it stalled plans by
    # ~50 ms; what comes later (connections, state) is frozen as it settles (csms.heap).
    gc.freeze()
    keeper = asyncio.create_task(heap.keep(), name="heap")
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(service.failed.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in [*waiters, keeper]:
        waiter.cancel()
    stopping = True
    try:
        await asyncio.wait_for(_stop(service, http), shutdown_timeout_s)
    except TimeoutError:
        log.error("shutdown_timeout", timeout_s=shutdown_timeout_s)
        exit_now(f"shutdown did not finish within {shutdown_timeout_s:g} s; exiting without it",
                 1)
    except Exception as e:
        log.exception("shutdown_failed")
        exit_now(f"shutdown failed: {type(e).__name__}: {e}", 1)
    if service.failure is not None:
        say(service.failure)
        return 1
    return 0


async def _start_http(service: Loadstar) -> HttpServer | None:
    """Start the HTTP app on `[http]`; None, having stopped the core, if it cannot listen."""
    cfg = service.config.http
    http = HttpServer(create_app(service), cfg.host, cfg.port)
    try:
        await http.start()
    except OSError as e:
        say(f"cannot listen on {cfg.host}:{cfg.port}: {error_text(e)}")
        await service.stop()
        return None

    def ended(task: asyncio.Task[None]) -> None:
        if not http.stopping:
            error = task.exception() if not task.cancelled() else None
            service.fail(f"the HTTP server stopped: {error_text(error) if error else 'ended'}")

    assert http.task is not None
    http.task.add_done_callback(ended)
    return http


async def _stop(service: Loadstar, http: HttpServer | None) -> None:
    """Stop the HTTP app first (no request reaches a stopping core), then the core."""
    if http is not None:
        await http.stop()
    await service.stop()
