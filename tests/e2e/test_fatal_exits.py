"""Fatal start-up and shutdown failures end `loadstar serve` with one clear line and an exit code;
a failing housekeeping round is logged and retried, not the end of housekeeping."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.cli import lifecycle
from csms.service import Loadstar
from csms.store import SqliteStore
from tests.conftest import make_config
from tests.raw_client import RawClient

EXIT_WITHIN_S = 10.0


def write_config(tmp_path: Path, db: Path | str, port: int = 0, http_port: int = 0) -> Path:
    config = tmp_path / "serve.toml"
    config.write_text(f'[ocpp]\nhost = "127.0.0.1"\nport = {port}\nconfigure_after_boot = false\n'
                      f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
                      f'[store]\npath = "{db}"\n[log]\nformat = "json"\nlevel = "info"\n')
    return config


async def serve(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "serve", "--config", str(config), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))


async def exit_of(proc: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    """The exit code and stderr lines of a child that must end by itself within seconds."""
    try:
        _, err = await asyncio.wait_for(proc.communicate(), EXIT_WITHIN_S)
    finally:
        if proc.returncode is None:  # it hung: do not leave it behind
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode().splitlines()


def operator_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("loadstar: ")]


async def test_a_port_in_use_ends_serve_with_one_line_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await serve(write_config(tmp_path, tmp_path / "x.db", port))
        code, lines = await exit_of(proc)
    assert code != 0
    assert not any("Traceback" in line for line in lines), lines
    assert [line for line in lines if str(port) in line] == [
        f"loadstar: cannot listen on 127.0.0.1:{port}: address already in use"]


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory")
    return tmp_path / "a-file" / "loadstar.db"


def _not_a_database(tmp_path: Path) -> Path:
    db = tmp_path / "text.db"
    db.write_text("this is a text file, not SQLite\n" * 100)
    return db


def _in_a_read_only_directory(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro / "loadstar.db"


def _read_only_file(tmp_path: Path) -> Path:
    db = tmp_path / "ro.db"
    db.touch()
    db.chmod(0o444)
    return db


as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")


@pytest.mark.parametrize("make_db", [
    _under_a_file,
    _not_a_database,
    pytest.param(_in_a_read_only_directory, marks=as_root),
    pytest.param(_read_only_file, marks=as_root),
])
async def test_an_unusable_database_ends_serve_with_one_line_naming_it(
        tmp_path: Path, make_db: object) -> None:
    db = make_db(tmp_path)  # type: ignore[operator]
    code, lines = await exit_of(await serve(write_config(tmp_path, db)))
    assert code != 0
    assert not any("Traceback" in line for line in lines), lines
    assert len(operator_lines(lines)) == 1, lines
    assert operator_lines(lines)[0].startswith(f"loadstar: cannot open database {db}: "), lines


class Listening:
    """A serve child that is up, with a charger connected and the database locked by us."""

    def __init__(self, proc: asyncio.subprocess.Process, db: Path) -> None:
        self.proc = proc
        self.db = db
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.lines: list[str] = []

    async def read(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode():
            self.lines.append(line.rstrip("\n"))
            try:
                await self.events.put(json.loads(line))
            except json.JSONDecodeError:
                pass

    async def until(self, event: str) -> dict:
        while True:
            got = await asyncio.wait_for(self.events.get(), EXIT_WITHIN_S)
            if got.get("event") == event:
                return got


@pytest.fixture
async def stuck(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Listening]:
    """A server whose graceful stop cannot finish: another process holds the write lock."""
    db = tmp_path / "locked.db"
    proc = await serve(write_config(tmp_path, db), *request.param)
    child = Listening(proc, db)
    reader = asyncio.create_task(child.read())
    port = (await child.until("ocpp_listening"))["port"]
    client = await RawClient.connect(f"ws://127.0.0.1:{port}/ocpp/LOCKED", "ocpp1.6")
    await client.ok("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # recording the charger's disconnect now waits for us
    try:
        yield child
    finally:
        lock.rollback()
        lock.close()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await reader
        await client.close()


@pytest.mark.parametrize("stuck", [("--shutdown-timeout", "1")], indirect=True)
async def test_a_shutdown_that_overruns_its_timeout_exits_non_zero(stuck: Listening) -> None:
    stuck.proc.send_signal(signal.SIGTERM)
    await stuck.until("shutdown_timeout")
    code = await asyncio.wait_for(stuck.proc.wait(), EXIT_WITHIN_S)
    assert code == 1
    assert operator_lines(stuck.lines) == [
        "loadstar: shutdown did not finish within 1 s; exiting without it"]
    assert not any("Traceback" in line for line in stuck.lines)


@pytest.mark.parametrize("stuck", [("--shutdown-timeout", "300")], indirect=True)
async def test_a_second_signal_during_shutdown_exits_at_once(stuck: Listening) -> None:
    stuck.proc.send_signal(signal.SIGTERM)
    await stuck.until("signal_received")
    stuck.proc.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(stuck.proc.wait(), EXIT_WITHIN_S)
    assert code == 128 + signal.SIGINT
    assert operator_lines(stuck.lines) == ["loadstar: SIGINT during shutdown: exiting at once"]


class FlakyStore(SqliteStore):
    """Fault injection for the test only: the first flush fails as on a full disk."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.flushes = 0
        self.flushed_again = asyncio.Event()

    async def flush(self) -> None:
        self.flushes += 1
        if self.flushes == 1:
            raise sqlite3.OperationalError("database or disk is full")
        await super().flush()
        if self.flushes == 3:  # the round after the first good one: housekeeping goes on
            self.flushed_again.set()


async def test_housekeeping_logs_a_failed_flush_and_flushes_again(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = FlakyStore(config.store.path)
    service = Loadstar(config, store=store, housekeeping_interval_s=0.01)
    with capture_logs() as logs:
        await service.start()
        try:
            await asyncio.wait_for(store.flushed_again.wait(), EXIT_WITHIN_S)
        finally:
            await service.stop()
    failed = [e for e in logs if e["event"] == "housekeeping_failed"]
    assert [(e["error"], e["error_type"]) for e in failed] == [
        ("database or disk is full", "OperationalError")]
    assert any(e["event"] == "housekeeping_recovered" for e in logs)
    assert service.failure is None and not service.failed.is_set()


class Died(BaseException):
    """Not an Exception: gets past the per-round handler, as a bug in it would."""


async def test_housekeeping_that_dies_stops_serve_with_a_non_zero_exit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def dies(self: Loadstar) -> None:
        raise Died("simulated crash")

    monkeypatch.setattr(Loadstar, "_housekeep", dies)
    try:
        code = await asyncio.wait_for(lifecycle.run(make_config(tmp_path)), EXIT_WITHIN_S)
    finally:
        gc.unfreeze()  # run() froze this test process's objects as it does a server's
    assert code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "loadstar: housekeeping stopped: simulated crash")


@pytest.fixture
def database_on_a_read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """An existing database on a read-only file system (root cannot write through that)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root; the permission cases above cover other users")
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    sqlite3.connect(src / "ro.db").execute("CREATE TABLE t (x)").connection.close()
    if subprocess.run(["mount", "--bind", str(src), str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not let us mount")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)],
                          capture_output=True).returncode != 0:
            pytest.skip("this machine does not let us remount read-only")
        yield ro / "ro.db"
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True, check=False)


async def test_a_read_only_database_ends_serve_with_one_line_naming_it(
        tmp_path: Path, database_on_a_read_only_mount: Path) -> None:
    db = database_on_a_read_only_mount
    code, lines = await exit_of(await serve(write_config(tmp_path, db)))
    assert code != 0
    assert not any("Traceback" in line for line in lines), lines
    assert len(operator_lines(lines)) == 1, lines
    assert operator_lines(lines)[0].startswith(f"loadstar: cannot open database {db}: "), lines
