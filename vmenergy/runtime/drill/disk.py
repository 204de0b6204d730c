"""A small disk of its own for the agents' stores, which the disk drill fills and frees.

The stores folder of the run is a tmpfs mounted before any agent starts; filling it writes one
file of all its free space, so every SQLite write of every agent then fails with "database or
disk is full" (ENOSPC) until the file is removed. This needs root (``mount``); without it the
drill is not run and says why. (``RLIMIT_FSIZE`` would be a per-process alternative, but it also
limits the process's log file, which then fails first: not the fault this drill is about.)

After the run, the stores are copied off the tmpfs into the run folder, and it is unmounted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

__all__ = ["SmallDisk", "can_mount"]

FILLER = ".drill-filler"


def can_mount() -> Optional[str]:
    """None when a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "the disk drill mounts a tmpfs for the stores and needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount/umount not found"
    return None


class SmallDisk:
    """A tmpfs of ``size_mb`` at ``path`` (an empty folder, made 0700)."""

    def __init__(self, path: Path, size_mb: int = 64) -> None:
        self.path = Path(path)
        self.size_mb = size_mb
        self.mounted = False
        self.filled_bytes = 0

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if any(self.path.iterdir()):
            raise RuntimeError(f"{self.path}: a store folder must be empty before its disk is mounted")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs", str(self.path)],
                       check=True, capture_output=True, text=True)
        self.mounted = True

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self) -> int:
        """Write until the disk refuses (ENOSPC); returns the bytes written."""
        block = b"\0" * (1 << 20)
        written = 0
        fd = os.open(self.path / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    written += os.write(fd, block[:max(4096, min(len(block), self.free_bytes()))])
                except OSError:  # ENOSPC: full, as meant
                    break
        finally:
            os.close(fd)
        self.filled_bytes = written
        return written

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)

    def unmount(self) -> None:
        """Copy the stores off the tmpfs into the same folder on the real disk, then unmount."""
        if not self.mounted:
            return
        self.free()
        keep = Path(tempfile.mkdtemp(prefix="vme-drill-stores-", dir=self.path.parent))
        try:
            for f in self.path.iterdir():
                if f.is_file():
                    shutil.copy2(f, keep / f.name)
            subprocess.run(["umount", str(self.path)], check=True, capture_output=True, text=True)
            self.mounted = False
            for f in keep.iterdir():
                shutil.move(str(f), self.path / f.name)
        finally:
            shutil.rmtree(keep, ignore_errors=True)
