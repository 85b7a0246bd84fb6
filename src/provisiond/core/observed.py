"""The observed state: one frozen snapshot of the cluster, as the observer saw it.

The observer (Proxmox + Kubernetes adapters) builds these values once per cycle; the planner
reads them and nothing else. Units are the ones the planner compares with the desired state:
memory in MiB, disk sizes in bytes, tags lower-case.

Invariants the observer guarantees:
- every VM on a host that did not answer is present with ``status=UNKNOWN`` ("unknown, not
  missing": ``/cluster/resources`` still lists it from the cluster file system);
- whatever could not be read is named in ``unobserved``, never silently left out, as typed data
  (per host: storage, PCI list; global: mappings, tasks; per VM: config): a failed cluster-wide
  list, an offline host, a VM whose config could not be read (``config is None``);
- ``kube is None`` means no Kubernetes is configured; a configured but unreadable Kubernetes is
  ``kube is None`` *and* ``unobserved.kubernetes``;
- ``config`` is the *current* config (``GET …/config?current=1``); ``pending`` is the config with
  pending changes merged in, or ``None`` when nothing is pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from provisiond.core.desired import IpConfig, Taint
from provisiond.core.hacluster import HaCluster

MANAGED_ANNOTATION = "provisiond.dev/managed"  # JSON: {"labels": [...], "taints": [...]}
PAUSED_ANNOTATION = "provisiond.dev/paused"
CORDONED_ANNOTATION = "provisiond.dev/cordoned"  # set by the executor when it cordons
# The node's ``status.nodeInfo.bootID`` when a GPU move cordoned it (in the same patch): the
# node is back only on another boot — a real node stays Ready ~40 s after its VM shut down.
BOOT_ID_ANNOTATION = "provisiond.dev/boot-id-before-move"


class VMStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"  # suspended/paused in QEMU: neither started nor stopped by the planner
    UNKNOWN = "unknown"  # its host did not answer


@dataclass(frozen=True, slots=True)
class Storage:
    name: str
    shared: bool = False
    active: bool = True
    avail_bytes: int | None = None  # free space as the host reports it; None: not known


@dataclass(frozen=True, slots=True)
class PciDevice:
    path: str  # "0000:01:00.0"
    device_id: str = ""  # "10de:20f1"
    name: str = ""


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    online: bool
    cpus: int  # logical CPUs
    memory_mib: int
    storages: tuple[Storage, ...] = ()
    pci_devices: tuple[PciDevice, ...] = ()
    maintenance: bool = False  # Proxmox HA node maintenance mode: evacuated like policy.maintenance

    def storage(self, name: str) -> Storage | None:
        for s in self.storages:
            if s.name == name and s.active:
                return s
        return None


@dataclass(frozen=True, slots=True)
class MappingEntry:
    """One ``map`` entry of a PCI resource mapping: the devices it names on one host."""

    host: str
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PciMapping:
    id: str
    entries: tuple[MappingEntry, ...] = ()
    live_migration: bool = False

    def devices_on(self, host: str) -> int:
        return sum(len(e.paths) for e in self.entries if e.host == host)


@dataclass(frozen=True, slots=True)
class Disk:
    slot: str  # "scsi0"
    storage: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Nic:
    index: int
    model: str
    mac: str | None  # upper-case colon form
    bridge: str | None = None
    tag: int | None = None
    firewall: bool | None = None


@dataclass(frozen=True, slots=True)
class HostPci:
    """``hostpci<index>``: a PCI resource mapping, or a raw host address (never written by us)."""

    index: int
    mapping: str | None = None
    raw: str | None = None  # the raw ``host=`` value when not a mapping


@dataclass(frozen=True, slots=True)
class VMConfig:
    cores: int = 1
    memory_mib: int = 512
    disks: Mapping[str, Disk] = field(default_factory=dict)  # slot -> disk
    nets: Mapping[int, Nic] = field(default_factory=dict)
    hostpci: Mapping[int, HostPci] = field(default_factory=dict)
    ipconfigs: Mapping[int, IpConfig] = field(default_factory=dict)
    nameserver: str | None = None  # space-separated, as Proxmox stores it
    searchdomain: str | None = None
    ciuser: str | None = None
    sshkeys: str | None = None  # decoded (plain), newline-separated
    tags: tuple[str, ...] = ()  # sorted, lower-case
    description: str = ""
    smbios_uuid: str | None = None  # ``smbios1: uuid=…`` lower-case: the guest's system UUID

    def gpu_claims(self) -> dict[str, int]:
        """Devices held per mapping (one per ``hostpciN: mapping=…``)."""
        claims: dict[str, int] = {}
        for pci in self.hostpci.values():
            if pci.mapping is not None:
                claims[pci.mapping] = claims.get(pci.mapping, 0) + 1
        return claims


@dataclass(frozen=True, slots=True)
class ObservedVM:
    vmid: int
    name: str
    host: str
    status: VMStatus
    cores: int  # /cluster/resources maxcpu: known even when the config is not
    memory_mib: int  # /cluster/resources maxmem in MiB
    template: bool = False
    lock: str | None = None  # "clone", "migrate", "backup", …
    tags: tuple[str, ...] = ()  # sorted, lower-case
    config: VMConfig | None = None  # None: the config could not be read
    pending: VMConfig | None = None  # config with pending changes merged in; None: none pending
    ha_state: str | None = None  # HA resource state ("started", …); None: not HA-managed
    uptime: int | None = None  # seconds since its start (``/cluster/resources``); None: unknown

    @property
    def description(self) -> str:
        return self.config.description if self.config is not None else ""

    def gpu_claims(self) -> dict[str, int]:
        """Devices held per mapping: current and pending both claim (bound at next start)."""
        if self.config is None:
            return {}
        claims = self.config.gpu_claims()
        if self.pending is not None:
            for mapping, n in self.pending.gpu_claims().items():
                claims[mapping] = max(claims.get(mapping, 0), n)
        return claims

    def raw_pci(self) -> tuple[str, ...]:
        """The hostpci keys that pass raw host devices: such a VM cannot move."""
        if self.config is None:
            return ()
        return tuple(f"hostpci{p.index}" for p in self.config.hostpci.values() if p.raw)


@dataclass(frozen=True, slots=True)
class KubeNode:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = True
    resource_version: str = ""  # metadata.resourceVersion: a patch applies only to this version
    system_uuid: str | None = None  # status.nodeInfo.systemUUID (lower-case): the VM's smbios uuid
    boot_id: str | None = None  # status.nodeInfo.bootID: the kubelet reports a new one per boot

    @property
    def back(self) -> bool:
        """Ready, and not on the boot recorded before a move (``BOOT_ID_ANNOTATION``): a Ready
        condition the old boot left behind (stale until the node controller notices) is not
        the VM back."""
        before = self.annotations.get(BOOT_ID_ANNOTATION)
        return self.ready and (before is None or before != self.boot_id)


@dataclass(frozen=True, slots=True)
class Task:
    """A running Proxmox task (``/cluster/tasks`` without an end time)."""

    upid: str
    type: str  # "qmclone", "qmigrate", …
    id: str  # the VMID the task is logged under: the *template's* for qmclone
    node: str
    started: float | None = None  # epoch seconds (UPID start time)


@dataclass(frozen=True, slots=True)
class Unobserved:
    """What this snapshot could not see, as typed data: the planner asks it which inputs of a
    decision are missing and leaves that decision waiting ("not observed: …")."""

    lists: tuple[str, ...] = ()  # failed cluster-wide lists, e.g. "cluster/resources"
    # Failed secondary reads. What they describe is absent (or a last good copy): nothing that
    # rests on them is decided — no placement on a host whose storage is unseen, no GPU decision
    # without the mappings or a host's PCI list — but VMIDs stay trustworthy.
    storage: tuple[str, ...] = ()  # hosts whose storage list could not be read
    pci: tuple[str, ...] = ()  # hosts whose PCI device list could not be read
    mappings: bool = False  # the PCI resource mappings could not be read
    tasks: bool = False  # the running tasks could not be read: nothing in flight is known
    offline_hosts: tuple[str, ...] = ()
    vm_configs: tuple[int, ...] = ()  # VMIDs whose config could not be read
    kubernetes: bool = False  # Kubernetes configured but not readable

    @property
    def vmids_trustworthy(self) -> bool:
        """Whether the absence of a VMID from ``vms`` means it does not exist."""
        return not self.lists

    @property
    def partial(self) -> tuple[str, ...]:
        """The failed secondary reads, named by their API path (for reports)."""
        return (
            *(("cluster/mapping/pci",) if self.mappings else ()),
            *(f"nodes/{h}/storage" for h in self.storage),
            *(f"nodes/{h}/hardware/pci" for h in self.pci),
        )


@dataclass(frozen=True, slots=True)
class ObservedState:
    hosts: tuple[Host, ...] = ()
    mappings: tuple[PciMapping, ...] = ()
    vms: tuple[ObservedVM, ...] = ()  # templates included (``template=True``)
    tasks: tuple[Task, ...] = ()
    kube: tuple[KubeNode, ...] | None = None  # None: no Kubernetes configured (or unreadable)
    unobserved: Unobserved = field(default_factory=Unobserved)
    self_vmid: int | None = None  # the VM provisiond runs in: never disrupted
    ha: HaCluster = field(default_factory=HaCluster)  # PVE 9.x HA rules and CRS auto-rebalance

    @property
    def read_failures(self) -> tuple[str, ...]:
        """The reads that failed this cycle and may succeed on the next: a cluster-wide list,
        a secondary read (storage, PCI, mappings), Kubernetes, the config of a VM on a host
        that answers. A host offline is a state of the cluster, not a failed read: its VMs'
        configs are not counted. Empty when the snapshot is as complete as the cluster allows."""
        u = self.unobserved
        unknown = {v.vmid for v in self.vms if v.status is VMStatus.UNKNOWN}
        configs = [f"config of VM {i}" for i in u.vm_configs if i not in unknown]
        tasks = ("cluster/tasks",) if u.tasks else ()
        kube = ("kubernetes",) if u.kubernetes else ()
        return (*u.lists, *tasks, *u.partial, *kube, *configs)


@dataclass(frozen=True, slots=True)
class KubePod:
    """A pod bound to a node, as a drain needs it (read only when a drain runs, never cached).

    ``daemonset``: its controller ownerReference is a DaemonSet (the controller puts it back at
    once: a drain leaves it); ``mirror``: a kubelet static pod's mirror (annotation
    ``kubernetes.io/config.mirror``: the API cannot remove it); ``empty_dir``: it mounts an
    ``emptyDir`` volume (its data dies with the eviction); ``terminating``: it carries a
    ``deletionTimestamp`` (evicted or deleted already, waiting for the kubelet).
    """

    namespace: str
    name: str
    node: str
    daemonset: bool = False
    mirror: bool = False
    empty_dir: bool = False
    phase: str = "Running"
    terminating: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Eviction(StrEnum):
    """What the Eviction API answered for one pod."""

    EVICTED = "evicted"  # 201: the pod is being deleted gracefully
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget allows no disruption now (retry later)
    GONE = "gone"  # 404: the pod no longer exists
