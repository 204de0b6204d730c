"""Persistence of agent state (SQLite by default; the SQL is plain enough for PostgreSQL)."""

from .codec import decode, encode
from .sqlite import Store, read_ledger

__all__ = ["Store", "read_ledger", "encode", "decode"]
