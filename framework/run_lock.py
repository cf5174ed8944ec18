"""One run per run directory: an OS file lock held for the life of the run.

The lock is ``fcntl.flock`` on ``<run_dir>/run.lock``, so the kernel releases it when the holding
process exits in any way (SIGKILL included): a lock file left by a dead process is stale and is
simply taken over. The holder writes its PID, host and start time into the file so a second run
can say who holds it. Only the launching process of a job (global rank 0) takes the lock; the
other ranks of the same job (torchrun, SLURM, Lightning's launcher) run under it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .errors import SoundstageError

LOCK_FILE = "run.lock"


class RunDirBusyError(SoundstageError):
    """Another live process holds the run directory's lock."""


class RunDirLock:
    """``with RunDirLock(run_dir):`` - exclusive use of ``run_dir`` or an immediate one-line error."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.previous: dict[str, Any] = {}  # what a stale lock file said (its holder is gone)

    def acquire(self) -> "RunDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's PID must survive
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise busy_error(self.path.parent, holder) from None
        except OSError as exc:  # e.g. ENOLCK: a network filesystem mounted without lock support
            os.close(fd)
            raise SoundstageError(f"cannot lock {self.path} ({exc.strerror}); put the run directory on a filesystem "
                                  f"with file locks") from exc
        self.previous = _read(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # an empty file: nobody holds it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy_error(run_dir: Path, holder: dict[str, Any]) -> RunDirBusyError:
    """The one-line error for a run directory held by ``holder``."""
    return RunDirBusyError(
        f"run directory {run_dir} is in use by PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"(since {holder.get('started', '?')}); wait for that run to end, or use another --run-dir"
    )


def lock_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock now (``None`` when it is free); takes nothing."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0).decode()
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}
