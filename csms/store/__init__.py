"""Storage behind a small interface so a PostgreSQL implementation can replace SQLite."""

from csms.store.base import (
    ApiKeyRecord,
    ChargePointRecord,
    CommandRecord,
    ConnectorRecord,
    SessionRecord,
    Store,
    StoreHealth,
)
from csms.store.sqlite import SqliteStore

__all__ = [
    "ApiKeyRecord",
    "ChargePointRecord",
    "CommandRecord",
    "ConnectorRecord",
    "SessionRecord",
    "SqliteStore",
    "Store",
    "StoreHealth",
]
