"""Ports: the interfaces through which the runtime reaches the world (DESIGN §2, STYLE §1).

The runtime (reconciler, executor) depends on these Protocols only; ``app`` plugs in the
adapters (proxmoxer-backed Proxmox, later Kubernetes and MQTT). Everything crossing a port is a
core type: raw API payloads never travel past the adapters. Errors crossing a port are from the
``core.errors`` tree, so the runtime decides retries by type alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from provisiond.core.desired import DesiredState, Taint
from provisiond.core.errors import TransientError
from provisiond.core.hacluster import HaRule
from provisiond.core.observed import (
    Eviction,
    KubeNode,
    KubePod,
    ObservedState,
    ObservedVM,
    Task,
    VMConfig,
)


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A Proxmox task to wait for: the node that runs it and its UPID."""

    node: str
    upid: str


@dataclass(frozen=True, slots=True)
class TaskStatus:
    running: bool
    exitstatus: str | None = None  # set once stopped: "OK", "WARNINGS: 2", or the error text

    @property
    def ok(self) -> bool:
        """Task success per PVE: ``OK`` or ``WARNINGS: <n>``."""
        return not self.running and (
            self.exitstatus == "OK" or (self.exitstatus or "").startswith("WARNINGS:")
        )


@dataclass(frozen=True, slots=True)
class VMConfigRead:
    """One VM's config as ``GET /nodes/{n}/qemu/{id}/config`` returns it: pending values merged
    in, pending deletes left out (what the VM will run with after its next start), and the
    ``digest`` that a write sends back so that it applies only to the config just read."""

    vmid: int
    host: str
    config: VMConfig
    digest: str | None
    lock: str | None = None


class StaleDigestError(TransientError):
    """A write's ``digest`` no longer matches (PVE: ``checksum mismatch (file change by other
    user?)``): the VM changed since it was read. Never retried as is — the VM is requeued and
    re-observed, and the next plan decides again."""


@dataclass(frozen=True, slots=True)
class MigratePrecondition:
    """What ``GET /nodes/{n}/qemu/{id}/migrate?target=`` says about moving a VM (SEMANTICS §6)."""

    running: bool
    allowed_nodes: tuple[str, ...] = ()
    not_allowed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node -> why
    local_disks: tuple[str, ...] = ()  # drives on storage the target does not share
    local_resources: tuple[str, ...] = ()  # e.g. raw hostpci, or non-live mapped while running
    mapped_resources: tuple[str, ...] = ()


class ConflictError(StaleDigestError):
    """A Kubernetes write's ``resourceVersion`` no longer matches (409 Conflict): the object
    changed since it was read. Like a stale digest it is requeued, never re-sent as is; the next
    cycle re-reads and decides again."""


class SpecSource(Protocol):
    """The desired state. ``load`` raises ``SpecError`` (with every issue) when invalid."""

    def load(self) -> DesiredState: ...

    def fingerprint(self) -> str:
        """Changes whenever the spec files change (the spec-change trigger polls it)."""
        ...


class ClusterReader(Protocol):
    """Observation. ``observe`` returns a complete-or-annotated snapshot (``unobserved``)."""

    async def observe(self) -> ObservedState: ...

    async def find_vm(self, vmid: int) -> ObservedVM | None:
        """A fresh read of one VM wherever it is (host, status, lock, tags): lists the cluster's
        VMs, so only for when the host is not known."""
        ...

    async def vm_status(self, vmid: int, host: str) -> ObservedVM | None:
        """One VM on a known host, read now (status, lock, tags, name, size; no config);
        ``None`` when there is no such VM on that host (gone, or moved)."""
        ...

    async def vm_config(self, vmid: int, host: str) -> VMConfigRead | None:
        """One VM's config on a known host, read now, with its digest; ``None`` as above."""
        ...

    async def active_tasks(self) -> tuple[Task, ...]:
        """Tasks running now, cluster-wide (``/cluster/tasks`` without an end time)."""
        ...

    async def ha_rules(self) -> tuple[HaRule, ...]:
        """Every PVE 9.x HA rule, read now (one request, uncached; each with the file's
        ``digest``)."""
        ...


class ProxmoxWriter(Protocol):
    """Mutating Proxmox calls. Async ones return the task to wait for."""

    async def clone(
        self,
        *,
        template_host: str,
        template_vmid: int,
        newid: int,
        name: str,
        description: str,
        target: str | None,
        full: bool,
        storage: str | None,
        pool: str | None,
    ) -> TaskRef: ...

    async def configure(
        self,
        *,
        host: str,
        vmid: int,
        values: Mapping[str, str],
        delete: tuple[str, ...],
        digest: str | None = None,
    ) -> None:
        """Raises ``StaleDigestError`` when ``digest`` is given and no longer matches."""
        ...

    async def resize(
        self, *, host: str, vmid: int, disk: str, size_bytes: int, digest: str | None = None
    ) -> TaskRef: ...

    async def start(self, *, host: str, vmid: int) -> TaskRef: ...

    async def shutdown(
        self, *, host: str, vmid: int, shutdown_timeout: int, force_stop: bool
    ) -> TaskRef: ...

    async def stop(self, *, host: str, vmid: int) -> TaskRef: ...

    async def reboot(self, *, host: str, vmid: int) -> TaskRef: ...

    async def migrate(
        self, *, host: str, vmid: int, target: str, online: bool, with_local_disks: bool
    ) -> TaskRef: ...

    async def migrate_precondition(
        self, *, host: str, vmid: int, target: str
    ) -> MigratePrecondition: ...

    async def destroy(self, *, host: str, vmid: int) -> TaskRef: ...

    async def task_status(self, task: TaskRef) -> TaskStatus: ...

    async def running_tasks(self, node: str) -> frozenset[str]:
        """The UPIDs of the tasks running on ``node`` now (one listing for all its tasks)."""
        ...

    async def task_log_tail(self, task: TaskRef, lines: int = 10) -> tuple[str, ...]: ...

    async def ha_rule_create(self, rule: HaRule) -> None:
        """``POST /cluster/ha/rules`` (synchronous: no task)."""
        ...

    async def ha_rule_update(self, rule: HaRule, *, digest: str | None = None) -> None:
        """``PUT /cluster/ha/rules/{rule}`` with every option of ``rule``; raises
        ``StaleDigestError`` when ``digest`` is given and the rules changed since."""
        ...

    async def ha_rule_delete(self, rule: str) -> None:
        """``DELETE /cluster/ha/rules/{rule}`` (PVE takes no digest here)."""
        ...


class KubeReader(Protocol):
    """The Kubernetes nodes. ``nodes`` raises ``TransientError`` when the API is unreachable or
    answers 5xx (the observation then marks Kubernetes unobserved)."""

    async def nodes(self) -> tuple[KubeNode, ...]: ...


_NO_CHANGE: Mapping[str, str | None] = {}


class KubeWriter(Protocol):
    """Mutating Kubernetes calls on nodes (and, for drains, their pods)."""

    async def patch_node(
        self,
        name: str,
        *,
        resource_version: str,
        labels: Mapping[str, str | None] = _NO_CHANGE,
        taints: tuple[Taint, ...] | None = None,
        unschedulable: bool | None = None,
        annotations: Mapping[str, str | None] = _NO_CHANGE,
    ) -> KubeNode:
        """One merge patch of the node as read at ``resource_version``: ``labels`` and
        ``annotations`` set (``None`` removes the key), ``taints`` the whole new list (``None``:
        unchanged), ``unschedulable`` (``None``: unchanged). Raises ``ConflictError`` on 409."""
        ...

    async def node_event(
        self,
        node: str,
        *,
        reason: str,
        message: str,
        type: str = "Normal",  # noqa: A002 - the Event field's name (Normal | Warning)
    ) -> None:
        """A Kubernetes Event on the Node (``source.component=provisiond``)."""
        ...

    async def pods_on(self, node: str) -> tuple[KubePod, ...]:
        """The pods bound to ``node`` now, every namespace (read when a drain needs them)."""
        ...

    async def evict(self, namespace: str, name: str) -> Eviction:
        """One ``policy/v1`` eviction: ``EVICTED``, ``BLOCKED`` by a PodDisruptionBudget (429),
        or ``GONE`` (404); never a direct delete."""
        ...


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A ``coordination.k8s.io/v1`` Lease's election fields as stored (``version`` is its
    ``resourceVersion``, ``""`` for a record not yet stored). ``holder`` is ``""`` when nobody
    holds it (released). Times are timezone-aware UTC; they are for people and other clients
    reading the lease: electors judge expiry by their own monotonic clock, never by these."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    version: str = ""


class LeaseClient(Protocol):
    """One named Lease. ``update`` is guarded by ``record.version`` (optimistic concurrency):
    a record changed since it was read raises ``TransientError`` (409), as does a server error;
    ``create`` of a Lease that exists raises ``TransientError`` (409 AlreadyExists). No call
    retries on its own: the elector's next round is the retry."""

    async def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist (404)."""
        ...

    async def create(self, record: LeaseRecord) -> LeaseRecord: ...

    async def update(self, record: LeaseRecord) -> LeaseRecord: ...
