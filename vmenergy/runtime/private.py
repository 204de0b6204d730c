"""Files and folders that hold secrets (passwords, tokens, private keys, agents' ledgers): readable
by their owner only, so another account on the machine can read nothing of a run.

A run folder is made 0700 and every secret in it 0600 (written with that mode from the start,
never chmod-ed after the fact, so there is no moment in which another account could open it);
a secret VME is handed (an accounts file, an agent's config or password file) is refused when
its group or others may read it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["PrivateFileError", "private_dir", "write_private", "create_private", "read_private"]


class PrivateFileError(PermissionError):
    """A file that holds secrets is readable (or writable) by others, or cannot be read."""


def private_dir(path: Path | str) -> Path:
    """``path`` as a folder only its owner can enter (made, with parents, if missing)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path | str, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600 (an existing file is made 0600 first)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def create_private(path: Path | str) -> Path:
    """An empty file at ``path`` with mode 0600, unless it exists (for files another library
    then opens, e.g. an SQLite database, whose side files take the database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Path(path)
    os.close(fd)
    return Path(path)


def read_private(path: Path | str, what: str) -> bytes:
    """The bytes of a file that holds secrets (``what`` says which, for the error), refused
    when it is not a regular file or its group or others may read or change it."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise PrivateFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:  # checked on the open descriptor: the file read is the file checked
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{what} {path} is not a regular file")
        if st.st_mode & 0o077:
            raise PrivateFileError(
                f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}: its group or others can read or "
                f"change it, and it holds passwords; make it private to its owner: chmod 600 {path}")
        return f.read()
