"""The resolved desired state: what the planner consumes.

A fleet document (``core.spec``) is validated and then *resolved* into these frozen values:
defaults < pool < VM merged, ``count``/``namePattern``/``vmidRange`` expanded into concrete VMs
with deterministic VMIDs, sizes in base units the Proxmox API uses. The planner never sees YAML
or pydantic models, only these types; tests build them directly.

Invariants (guaranteed by validation before resolution):
- VM names, VMIDs, MACs and IPs are unique across all fleets of a ``DesiredState``;
- every VMID is >= 100; every fleet name fits the Proxmox tag syntax ``[a-z0-9_.+-]``;
- GPUs are only ever PCI resource mappings (``mapping`` ids), never raw host addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PowerState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class Spread(StrEnum):
    PREFERRED = "preferred"  # spread the pool across hosts when it costs nothing else
    STRICT = "strict"  # anti-affinity: two VMs of the pool never share a host


class CloneMode(StrEnum):
    FULL = "full"
    LINKED = "linked"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a desired object was declared, for messages (``fleet.yaml:42``)."""

    file: str = "<memory>"
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """The template a VM is cloned from: by name (resolved against observed templates) or VMID."""

    name: str | None = None
    vmid: int | None = None


@dataclass(frozen=True, slots=True)
class DiskSpec:
    """A disk the VM must have at least this size of (disks grow, never shrink)."""

    slot: str  # "scsi0", "virtio1", …
    size_bytes: int
    storage: str | None = None  # where a disk that must be created lives; None = clone's storage


@dataclass(frozen=True, slots=True)
class NicSpec:
    """One network interface: ``net<index>: <model>=<mac>,bridge=<bridge>[,tag=<vlan>]``."""

    index: int
    bridge: str
    model: str = "virtio"
    mac: str | None = None  # upper-case colon form "00:16:3E:63:79:26" once resolved
    vlan: int | None = None
    firewall: bool | None = None


@dataclass(frozen=True, slots=True)
class IpConfig:
    """cloud-init ``ipconfig<index>``: ``ip=<cidr>|dhcp[,gw=<ip>]``."""

    index: int
    ip: str  # CIDR or "dhcp"
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class CloudInit:
    user: str | None = None
    ssh_keys: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    search_domain: str | None = None
    ipconfigs: tuple[IpConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuRequest:
    """``count`` devices of the PCI resource mapping ``mapping`` (hostpci0..count-1)."""

    mapping: str
    count: int


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str | None
    effect: str  # NoSchedule | PreferNoSchedule | NoExecute

    def __str__(self) -> str:
        v = f"={self.value}" if self.value is not None else ""
        return f"{self.key}{v}:{self.effect}"


@dataclass(frozen=True, slots=True)
class KubeNodeSpec:
    """What provisiond manages on the Kubernetes node that runs in the VM."""

    node_name: str
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    taints: tuple[Taint, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()  # sorted by key


@dataclass(frozen=True, slots=True)
class DesiredVM:
    fleet: str
    pool: str
    name: str
    vmid: int
    template: TemplateRef
    cores: int
    memory_mib: int
    index: int = 1  # 1-based position in its pool
    clone_mode: CloneMode = CloneMode.FULL
    storage: str | None = None  # target storage of a full clone
    proxmox_pool: str | None = None  # the Proxmox pool the VM joins (pool-scoped tokens)
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    cloud_init: CloudInit | None = None
    gpus: GpuRequest | None = None
    power: PowerState = PowerState.RUNNING
    host: str | None = None  # pinned host
    allowed_hosts: tuple[str, ...] | None = None  # None = any online host
    spread: Spread = Spread.PREFERRED
    tags: tuple[str, ...] = ()  # extra tags, besides the ownership tags
    kubernetes: KubeNodeSpec | None = None  # None = not a Kubernetes node
    allow_large_growth: bool = False  # grow disks past the free space / the growth factor
    source: SourceRef = field(default_factory=SourceRef)


@dataclass(frozen=True, slots=True)
class Overcommit:
    cpu: float = 4.0
    memory: float = 1.0


class HaBalance(StrEnum):
    """Who rebalances HA-managed VMs (PVE 9.x: the CRS can, with ``ha-auto-rebalance``)."""

    AUTO = "auto"  # provisiond unless the CRS auto-rebalance is on (or may be: options unread)
    ALWAYS = "always"  # provisiond, even beside the CRS balancer (two balancers: risk of churn)
    NEVER = "never"  # never provisiond: HA-managed VMs are the HA manager's


@dataclass(frozen=True, slots=True)
class RebalancePolicy:
    enabled: bool = False
    memory_threshold: float = 0.90
    cpu_threshold: float = 1.0
    ha_managed: HaBalance = HaBalance.AUTO


@dataclass(frozen=True, slots=True)
class DrainPolicy:
    """How a node is drained (docs/maintenance.md): ``timeout`` seconds of evictions blocked by
    PodDisruptionBudgets before the drain gives up (the node stays cordoned, reported blocked);
    ``delete_empty_dir_data``: evict pods with ``emptyDir`` volumes too (their data is lost)."""

    timeout: float = 600.0
    delete_empty_dir_data: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    prune: bool = False
    allow_empty: bool = False
    adopt: bool = False
    reboot_for_pending: bool = False  # apply pending config changes by rebooting
    force_stop_after_shutdown_timeout: bool = False
    max_concurrent_actions: int = 4
    max_concurrent_per_host: int = 2
    max_disruptions_per_pool: int = 1
    max_disruptions: int = 2
    max_disk_growth: float = 4.0  # a disk grown more than this many times at once is blocked
    overcommit: Overcommit = field(default_factory=Overcommit)
    rebalance: RebalancePolicy = field(default_factory=RebalancePolicy)
    maintenance: tuple[str, ...] = ()
    drain: DrainPolicy = field(default_factory=DrainPolicy)


@dataclass(frozen=True, slots=True)
class DesiredFleet:
    name: str
    policy: Policy
    vms: tuple[DesiredVM, ...]
    source: SourceRef = field(default_factory=SourceRef)
    publish_ha_rules: bool = False  # PVE 9.x: the spec's spread/pinning as owned HA rules

    @property
    def tag(self) -> str:
        """The Proxmox tag that marks this fleet's VMs."""
        return f"pd-{self.name}"


@dataclass(frozen=True, slots=True)
class DesiredState:
    fleets: tuple[DesiredFleet, ...]

    def all_vms(self) -> tuple[DesiredVM, ...]:
        return tuple(vm for f in self.fleets for vm in f.vms)


OWNER_TAG = "provisiond"
PAUSED_TAG = "pd-paused"


def ownership_marker(fleet: str, vm: str) -> str:
    """The description marker written by the clone call (a clone cannot carry tags)."""
    return f"provisiond:{fleet}/{vm}"
