"""One daemon per machine without leader election: an exclusive ``flock`` in the state
directory.

Without Kubernetes (systemd on a maintenance VM) there is no Lease to elect a leader on, so a
second ``provisiond run`` on the same machine — a stray manual start beside the service — must
not act beside the first. ``InstanceLock.acquire`` takes a non-blocking exclusive ``fcntl.flock``
on ``<state_dir>/provisiond.lock`` and keeps the file open for the life of the process; the
kernel drops the lock when the process ends, however it ends (kill -9 included), so a stale
lock file never blocks a restart. The holder's pid is written into the file for the message.

It protects one machine only: two machines need leader election (Kubernetes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from provisiond.core.errors import ConfigError

LOCK_NAME = "provisiond.lock"


class InstanceLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``ConfigError`` saying who holds it (one line)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot use the state directory {self.path.parent}: {exc.strerror} "
                "(set daemon.state_dir)"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise ConfigError(
                f"another provisiond is already running on this machine{who}: {self.path} is locked"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
