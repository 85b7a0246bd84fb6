"""Wiring, leader election or one daemon per machine (issue 17): whether election is on, the
replica's identity, the elector on its Lease as a manager runnable, and the instance lock
used without election."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provisiond.adapters.instance_lock import InstanceLock
from provisiond.adapters.kube import connection_source
from provisiond.adapters.kube_lease import KubeLease, pod_namespace
from provisiond.adapters.metrics import Metrics
from provisiond.runtime.leader import ElectionConfig, LeaderElector
from provisiond.settings import Settings


def kubernetes_configured(settings: Settings) -> bool:
    """``kubernetes.enabled`` and a kubeconfig in the settings or ``$KUBECONFIG``, or running in
    a pod (the same rule as the node adapters: ``adapters.kube.connection_source``)."""
    return not isinstance(connection_source(settings.kubernetes), str)


def election_enabled(settings: Settings) -> bool:
    enabled = settings.leader_election.enabled
    return kubernetes_configured(settings) if enabled is None else enabled


def election_identity() -> str:
    """The pod's name (``POD_NAME`` from the downward API), else ``<hostname>_<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def state_dir(settings: Settings) -> Path:
    if settings.daemon.state_dir is not None:
        return settings.daemon.state_dir
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(systemd) if systemd else Path("/var/lib/provisiond")


def instance_lock(settings: Settings) -> InstanceLock | None:
    """Without leader election: the lock that keeps a second daemon on this machine out
    (``acquire`` raises ``ConfigError`` naming the holder). None when election is on."""
    return None if election_enabled(settings) else InstanceLock(state_dir(settings))


@dataclass(slots=True)
class Election:
    """The elector as a manager runnable: it owns the Lease client and closes it."""

    elector: LeaderElector
    lease: KubeLease
    name: str = "leader-election"

    def is_leader(self) -> bool:
        """Leadership as the elector's state machine stands (MQTT status and commands)."""
        return self.elector.is_leader

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.elector.run(stop)
        finally:
            await self.lease.close()


def build_election(settings: Settings, metrics: Metrics | None = None) -> Election:
    """The elector on its Lease; ``metrics`` gets ``leader_election_master_status{name}``: 0
    from the start (a standby), 1 while leading."""
    le = settings.leader_election
    namespace = le.namespace or pod_namespace() or "default"
    lease = KubeLease(
        name=le.name,
        namespace=namespace,
        kubeconfig=settings.kubernetes.kubeconfig,
        context=settings.kubernetes.context,
        request_timeout=max(1.0, le.retry_period),
    )
    config = ElectionConfig(
        identity=election_identity(),
        name=le.name,
        namespace=namespace,
        lease_duration=le.lease_duration,
        renew_deadline=le.renew_deadline,
        retry_period=le.retry_period,
        release_timeout=le.release_timeout,
    )
    hooks: list[Callable[[bool], None]] = []
    if metrics is not None:
        metrics.set_leader(le.name, leader=False)
        hooks.append(lambda leader: metrics.set_leader(le.name, leader=leader))
    return Election(LeaderElector(lease, config, on_change=hooks), lease)
