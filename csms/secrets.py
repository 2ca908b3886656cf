"""Secrets we must give back (webhook secrets sign what we send) are stored encrypted.

Fernet (AES-128-CBC with HMAC-SHA256) with a key kept in a file beside the SQLite file, created
with mode 0600 on first use: a copy of the database alone does not reveal the secrets. The key
never reaches a log, and neither does a secret.
"""

from __future__ import annotations

import os
import stat

import structlog
from cryptography.fernet import Fernet, InvalidToken

log = structlog.get_logger("csms.secrets")

KEY_SUFFIX = ".secret-key"


class SecretError(Exception):
    """A sealed secret cannot be opened (another key, or tampered with)."""


def key_path_for(db_path: str) -> str | None:
    """Where the key of the database at `db_path` lives; None for an in-memory database."""
    if db_path in ("", ":memory:") or db_path.startswith("file::memory:"):
        return None
    return db_path + KEY_SUFFIX


def _load_or_create(path: str) -> bytes:
    """The key in `path`, made (0600, never overwritten) when there is none."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Said, not fixed: the operator may share it on purpose (a group of services).
            log.warning("secret_key_file_readable_by_others", path=path, mode=oct(mode & 0o777))
        with open(path, "rb") as f:
            return f.read().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    log.info("secret_key_created", path=path)
    return key


class SecretBox:
    """Seals and opens secrets with one key, loaded (or created) on first use."""

    def __init__(self, key_path: str | None) -> None:
        self.key_path = key_path
        self._fernet: Fernet | None = None

    def __repr__(self) -> str:
        return f"SecretBox(key_path={self.key_path!r})"

    def _box(self) -> Fernet:
        if self._fernet is None:
            # An in-memory database keeps its key in memory: both end with the process.
            key = Fernet.generate_key() if self.key_path is None \
                else _load_or_create(self.key_path)
            self._fernet = Fernet(key)
        return self._fernet

    def seal(self, secret: str) -> str:
        """`secret` encrypted and authenticated, as text for a column."""
        return self._box().encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        """The secret inside `sealed`; SecretError if this key did not seal it."""
        try:
            return self._box().decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretError("a stored secret cannot be decrypted with this key") from exc
