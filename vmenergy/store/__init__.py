"""Persistence of agent state (SQLite by default; the SQL is plain enough for PostgreSQL)."""

from .codec import decode, encode
from .sqlite import Store, StoreError, read_ledger

__all__ = ["Store", "StoreError", "read_ledger", "encode", "decode"]
