"""The fence: the one check every mutating Proxmox call passes right before it is sent.

Leader election on a Kubernetes Lease gives no fencing token (SEMANTICS §10): a process that
was paused, or whose renewals failed, may still believe it leads. So the decision "may this
process act?" is re-made, locally and without a request, for every single mutating call:
``Fence.sending(method, endpoint)`` asks ``may_act()`` (the elector's monotonic-clock check of
its last successful renew) and raises ``NotLeaderError`` when the answer is no — nothing is
sent. The Proxmox client calls it on its request thread immediately before the HTTP request
(not when the call is queued: a call can wait for a free slot behind slow reads, and the
lease may run out meanwhile).

Kubernetes writes (cordon, drain, evictions, labels — the Kubernetes adapter being built) must
pass the same fence, the same way: ``with fence.sending(method, endpoint):`` around each
mutating request, right before it is sent, so a deposed leader touches neither Proxmox nor
Kubernetes, and a graceful stop waits for both. The Lease writes themselves
(``adapters.kube_lease``) are the election and never pass it.

It also counts the calls in flight, so a graceful stop can wait until every call already sent
has been answered (``drained``) before the lease is released: once answered, a Proxmox task
runs server-side and the next leader adopts it.

Invariants: a call refused here was never sent; ``sending`` is thread-safe (request threads);
a fence without an elector (``Fence(lambda: True)``) still counts in-flight calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from provisiond.core.errors import NotLeaderError


class Fence:
    def __init__(self, may_act: Callable[[], bool]) -> None:
        self._may_act = may_act
        self._lock = threading.Lock()
        self._in_flight = 0
        self.refused = 0  # calls refused so far (tests and logs)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def sending(self, method: str, endpoint: str) -> Iterator[None]:
        """Wrap the sending of one mutating request; raises ``NotLeaderError`` instead."""
        with self._lock:
            if not self._may_act():
                self.refused += 1
                raise NotLeaderError(
                    f"{method} {endpoint} not sent: this process does not hold the lease"
                )
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    async def drained(self, seconds: float, *, poll: float = 0.05) -> bool:
        """Wait until no guarded call is in flight (True), or ``seconds`` pass (False)."""
        try:
            async with asyncio.timeout(seconds):
                # The count changes in request threads, where an asyncio.Event cannot be
                # set; polling it a few times a second is cheap.
                while self._in_flight > 0:  # noqa: ASYNC110 - see above
                    await asyncio.sleep(poll)
        except TimeoutError:
            return False
        return True
