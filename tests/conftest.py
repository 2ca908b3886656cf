"""Shared fixtures: a real Loadstar on a free port with its own SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from csms.config import Config
from csms.service import Loadstar


def make_config(tmp_path: Path, **ocpp: object) -> Config:
    """Embedded defaults on port 0 and a database in `tmp_path`."""
    config = Config()
    config.store.path = str(tmp_path / "loadstar.db")
    config.ocpp.host = "127.0.0.1"
    config.ocpp.port = 0
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
