"""Liveness and readiness of the daemon, as ``/healthz`` and ``/readyz`` report them.

- **live**: the reconcile loop shows signs of life. Every finished cycle, every action event and
  every Proxmox request (a task being polled) is a heartbeat (``beat``). The loop is declared
  wedged when no heartbeat came for ``missed_cycles`` intervals plus ``grace`` (the time a cycle
  itself may take) — "fails after two missed cycles" (DESIGN §9). The interval is read through
  a callable so a SIGHUP that changes it is followed at once. The server answering at all also
  proves the event loop turns: it runs in that loop.
- **ready**: the first observation is done and Proxmox answered it — reachable and the token
  accepted (the cluster-wide lists were read). Leadership plays no part: a standby that observes
  is ready too. A later failed observation (Proxmox down, token revoked) makes it not ready
  until one succeeds again.

Reasons returned are fixed sentences: never an error text (which could carry a URL or an
identity) — the logs have the details.

``beat`` may be called from the Proxmox client's worker threads: it stores one float.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(
        self,
        *,
        interval: Callable[[], float],
        missed_cycles: int = 2,
        grace: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._missed = missed_cycles
        self._grace = grace
        self._clock = clock
        self._last_beat = clock()  # starting counts: the first cycle has its full allowance
        self._observed = False
        self._reachable = False

    def beat(self) -> None:
        self._last_beat = self._clock()

    def observation(self, *, proxmox_ok: bool) -> None:
        """An observation finished; ``proxmox_ok``: its cluster-wide reads succeeded."""
        self._observed = True
        self._reachable = proxmox_ok
        self.beat()

    def live(self) -> tuple[bool, str]:
        silent = self._clock() - self._last_beat
        allowed = self._missed * self._interval() + self._grace
        if silent > allowed:
            return False, f"no reconcile activity for {silent:.0f}s (allowed {allowed:.0f}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if not self._observed:
            return False, "first observation not done yet"
        if not self._reachable:
            return False, "Proxmox unreachable or the token rejected (see the logs)"
        return True, "ok"
