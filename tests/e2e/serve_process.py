"""Run `loadstar serve` as a real child process and learn its ports from its JSON log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path


class ServeProcess:
    """A `loadstar serve` child on a free port, with a database at `db`."""

    def __init__(self, tmp_path: Path, db: Path, extra_toml: str = "", *, port: int = 0,
                 tail_toml: str = "", args: tuple[str, ...] = (), http: bool = True) -> None:
        self.config = tmp_path / f"serve-{port}.toml"
        # The HTTP app on a free port of its own (`http_port` once started), or off.
        http_toml = 'host = "127.0.0.1"\nport = 0' if http else "enabled = false"
        self.config.write_text(
            f'[ocpp]\nhost = "127.0.0.1"\nport = {port}\nconfigure_after_boot = false\n'
            f'{extra_toml}\n[http]\n{http_toml}\n'
            f'[store]\npath = "{db}"\n[log]\nformat = "json"\nlevel = "info"\n'
            f"{tail_toml}\n"
        )
        self.args = args
        self.http = http
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.http_port = 0

    async def start(self) -> int:
        """Start the child and wait until it logs that it listens (OCPP, and HTTP if on)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "serve", "--config", str(self.config), *self.args,
            stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env,
        )
        assert self.proc.stderr is not None
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 30)
            if not line:
                raise RuntimeError("loadstar serve exited before listening")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "ocpp_listening":
                self.port = int(event["port"])
            elif event.get("event") == "http_listening":
                self.http_port = int(event["port"])
            if self.port and (self.http_port or not self.http):
                self._drain = asyncio.create_task(self._drain_stderr())
                return self.port

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, cp_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{cp_id}"

    async def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def terminate(self) -> int:
        """SIGTERM and wait for the graceful exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)
