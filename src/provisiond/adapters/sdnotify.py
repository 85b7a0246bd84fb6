"""systemd's service notification protocol (sd_notify(3)) for ``Type=notify`` units.

The protocol is one datagram per notification, ``KEY=VALUE`` lines, sent to the Unix datagram
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). It is a
few lines on the standard library's ``socket``, so no library is used: the ``sdnotify`` package
adds nothing but a dependency (and swallows every error), ``systemd-python`` needs libsystemd
headers to build. Without ``$NOTIFY_SOCKET`` (not under systemd) nothing is built or sent.

What the daemon says and when (``SystemdNotifier``):
- ``READY=1`` after the first cycle whose observation was made (the same moment ``/readyz``
  turns ready), never before — so ``systemctl start`` returns once the daemon has seen Proxmox;
- ``STATUS=…`` after every cycle: its number, result, what the plan holds (counts only: the text
  shows in ``systemctl status`` to any user, so it carries no error text, names or URLs);
- ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (when set for this PID), but only while
  ``alive()`` says the reconcile loop is alive: a wedged loop stops the pings and systemd
  restarts the service (``WatchdogSec=``);
- ``STOPPING=1`` as soon as stop is requested (SIGTERM);
- ``RELOADING=1`` with ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, as systemd ≥ 253 wants it) when a
  SIGHUP reload begins, ``READY=1`` when it is done.

A failed send (systemd gone, socket full) is logged once and otherwise ignored: notification is
advisory and must never stop reconciling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from provisiond.adapters.results import FinishedCycle

log = structlog.get_logger("provisiond.sdnotify")


class NotifySocket:
    """The datagram socket to systemd; ``send`` never raises."""

    def __init__(self, address: str) -> None:
        # "@name" is the abstract namespace: a leading NUL byte on the wire.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> NotifySocket | None:
        address = environ.get("NOTIFY_SOCKET", "")
        return cls(address) if address.startswith(("/", "@")) else None

    def send(self, *fields: str) -> bool:
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify_failed", error=exc.strerror or type(exc).__name__)
                self._warned = True
            return False
        return True

    def close(self) -> None:
        self._sock.close()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, when it is meant for
    this process (``$WATCHDOG_PID`` unset or ours), as sd_watchdog_enabled(3) decides."""
    owner = environ.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


def status_line(cycle: FinishedCycle) -> str:
    """One line for ``systemctl status``: counts only, never an error text or a name."""
    if cycle.observed is None or cycle.plan is None:
        return f"cycle {cycle.id}: {cycle.result}, nothing observed (see the journal)"
    p, vms = cycle.plan, sum(1 for v in cycle.observed.vms if not v.template)
    state = "converged" if cycle.converged else cycle.result
    parts = [f"{vms} VMs observed", f"{len(p.actions)} actions planned"]
    more = (
        (len(p.waiting), "under way"),
        (len(p.blocked), "blocked"),
        (len(p.conflicts), "conflicts"),
    )
    parts += [f"{n} {what}" for n, what in more if n]
    mode = " (read-only)" if cycle.read_only else ""
    return f"cycle {cycle.id}: {state}{mode}; " + ", ".join(parts)


class SystemdNotifier:
    """A ``CycleListener`` (READY, STATUS) and a ``Runnable`` (WATCHDOG, STOPPING); ``reloading``
    wraps the SIGHUP reload hook (RELOADING … READY)."""

    name = "sd-notify"

    def __init__(
        self,
        sock: NotifySocket,
        *,
        watchdog: float | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sock = sock
        self._watchdog = watchdog
        self.alive = alive  # app may point it at the health check once that is built
        self.ready = False
        self._silent = False  # the watchdog pings are held back (the loop is wedged)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        sock = NotifySocket.from_environ(environ)
        if sock is None:
            return None
        return cls(sock, watchdog=watchdog_interval(environ, os.getpid()))

    # -- CycleListener -------------------------------------------------------------------------
    def cycle_finished(self, result: FinishedCycle) -> None:
        status = f"STATUS={status_line(result)}"
        if not self.ready and result.observed is not None:
            self.ready = True
            self._sock.send("READY=1", status)
            log.info("sd_notify_ready")
        else:
            self._sock.send(status)

    # -- SIGHUP --------------------------------------------------------------------------------
    def reloading(self, reload: Callable[[], None]) -> Callable[[], None]:
        def hook() -> None:
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self._sock.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")
            try:
                reload()
            finally:
                self._sock.send("READY=1", "STATUS=reloaded; next cycle comes at once")

        return hook

    # -- Runnable ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        try:
            if self._watchdog is None:
                await stop.wait()
            else:
                while not stop.is_set():
                    self._ping()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._watchdog)
            self._sock.send("STOPPING=1", "STATUS=stopping: no new actions")
        finally:
            self._sock.close()

    def _ping(self) -> None:
        if self.alive():
            if self._silent:
                log.info("sd_watchdog_resumed")
                self._silent = False
            self._sock.send("WATCHDOG=1")
        elif not self._silent:
            log.error("sd_watchdog_withheld", why="the reconcile loop shows no activity")
            self._silent = True
