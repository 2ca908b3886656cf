"""Shared fixtures: a real Loadstar on a free port with its own SQLite file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import settings

from adapters.http.app import create_app
from adapters.http.server import HttpServer
from csms.config import Config
from csms.service import Loadstar

# The same examples on every run: a suite that passes on a commit passes again on it. Explore
# further by hand with `--hypothesis-seed=N` (and HYPOTHESIS_PROFILE=explore).
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def make_config(tmp_path: Path, **ocpp: object) -> Config:
    """Embedded defaults on port 0 and a database in `tmp_path`."""
    config = Config()
    config.store.path = str(tmp_path / "loadstar.db")
    config.ocpp.host = "127.0.0.1"
    config.ocpp.port = 0
    config.http.port = 0
    for key, value in ocpp.items():
        setattr(config.ocpp, key, value)
    return config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def server(config: Config) -> AsyncIterator[Loadstar]:
    service = Loadstar(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
def url(server: Loadstar) -> Callable[[str], str]:
    return lambda cp_id: f"ws://127.0.0.1:{server.ocpp_port}/ocpp/{cp_id}"


@pytest.fixture
async def http(server: Loadstar) -> AsyncIterator[HttpServer]:
    """The server's HTTP API on a free port of its own (what the CLI and relay clients reach)."""
    http = HttpServer(create_app(server), "127.0.0.1", 0)
    await http.start()
    try:
        yield http
    finally:
        await http.stop()
