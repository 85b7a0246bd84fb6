"""The simulated cluster's parts wired together: store, REST registry, the PDB controller, pod
termination, fault rules, the bearer token and the request counts. Loop-thread owned."""

from __future__ import annotations

import asyncio
import secrets
import weakref
from collections import Counter
from dataclasses import dataclass, field

from provisiond.sim.kube.disruption import Disruption
from provisiond.sim.kube.faults import Faults
from provisiond.sim.kube.pods import PodTermination
from provisiond.sim.kube.registry import Registry
from provisiond.sim.kube.store import Store


@dataclass
class Options:
    """Tunables; durations are wall-clock seconds."""

    bookmark_interval: float = 60.0  # the watch cache's bookmark frequency
    pod_termination: float = 0.1  # how long the kubelet takes to confirm a graceful delete
    history_size: int = 10_000  # events kept for watch resume before compaction
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class KubeCluster:
    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self.store = Store(history_size=self.options.history_size)
        self.registry = Registry(self.store)
        self.disruption = Disruption(self.store, self.registry)
        self.pods = PodTermination(
            self.store, self.registry, termination=self.options.pod_termination
        )
        self.faults = Faults()
        self.counts: Counter[tuple[str, str]] = Counter()  # (verb, resource) served
        self.machines: dict[str, int] = {}  # node name -> VMID (set by the Proxmox link)
        self.transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    @property
    def token(self) -> str:
        return self.options.token

    def authorized(self, header: str | None) -> bool:
        """``Authorization: Bearer <token>``; the scheme word in any case (the Python
        in-cluster loader writes ``bearer``), exactly one space before the token."""
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token, self.token)
