"""Persistence of agent state (SQLite by default; the SQL is plain enough for PostgreSQL)."""

from .codec import decode, encode, register_record
from .sqlite import Store

__all__ = ["Store", "encode", "decode", "register_record"]
