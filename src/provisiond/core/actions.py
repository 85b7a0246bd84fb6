"""Actions: what the plan asks the executor to do, one frozen dataclass per kind.

Every action carries
- ``id``: stable within a plan and across replans of the same situation (``"clone:1038"``);
- ``reason``: one human sentence, logged and published with the action;
- ``after``: ids of actions in the same plan that must succeed first (per-VM order, drain before
  an offline migration, destroy after everything else). Actions whose ``after`` are done may run
  concurrently, within the executor's limits.
``kind`` (class attribute) is the stable name used in metrics labels and logs; ``phase`` orders
the plan's list (a topological order of ``after``).

``Action`` is a closed union: the executor dispatches with ``match`` + ``assert_never``.
Proxmox values are exactly what goes on the wire (``Configure.values``), except ``sshkeys`` which
is plain text: the adapter percent-encodes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, assert_never

from provisiond.core.desired import Taint
from provisiond.core.hacluster import HaRule

HA_RULES_VMID = 0  # the pseudo-VMID every HA rule action is keyed by (VMIDs are >= 100)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    id: str
    reason: str
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class _OnVM(_Base):
    """An action on a Proxmox VM."""

    vmid: int
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _OnHost(_OnVM):
    """An action on a Proxmox VM through the host it stands on."""

    host: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _OnNode(_Base):
    """An action on the Kubernetes node of a VM (``vmid``: whose actions it is ordered with)."""

    node: str
    vmid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Clone(_OnVM):
    """``POST /nodes/{template_host}/qemu/{template_vmid}/clone``.

    ``target`` is the host the clone lands on (``None``: the template's host). ``storage`` is
    given for full clones only.
    """

    kind: ClassVar[str] = "clone"
    phase: ClassVar[int] = 1
    fleet: str
    pool: str
    template_vmid: int
    template_host: str
    target: str | None
    full: bool
    storage: str | None
    proxmox_pool: str | None
    description: str  # the ownership marker


@dataclass(frozen=True, slots=True, kw_only=True)
class Migrate(_OnVM):
    """``POST /nodes/{source}/qemu/{vmid}/migrate``: live when ``online`` (the VM runs)."""

    kind: ClassVar[str] = "migrate"
    phase: ClassVar[int] = 2
    source: str
    target: str
    online: bool
    with_local_disks: bool = False


class MoveStep(StrEnum):
    CORDON = "cordon"
    DRAIN = "drain"
    SHUTDOWN = "shutdown"
    MIGRATE_OFFLINE = "migrate_offline"
    START = "start"
    WAIT_READY = "wait_ready"
    UNCORDON = "uncordon"


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuMove(_OnVM):
    """The offline workflow for a VM whose PCI mapping cannot live-migrate (DESIGN §6).

    ``steps`` run in order; each checks its effect first, so a crash resumes mid-way. ``node`` is
    the Kubernetes node (``None``: not a Kubernetes node, or no Kubernetes: no kube steps).
    """

    kind: ClassVar[str] = "gpu_move"
    phase: ClassVar[int] = 2
    source: str
    target: str
    node: str | None
    steps: tuple[MoveStep, ...]
    with_local_disks: bool = False
    force_stop: bool = False
    drain_timeout: float = 600.0  # the drain step's, as ``Drain.timeout``
    delete_empty_dir_data: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Configure(_OnHost):
    """``PUT /nodes/{host}/qemu/{vmid}/config`` with ``values`` and ``delete`` (spec keys only)."""

    kind: ClassVar[str] = "configure"
    phase: ClassVar[int] = 3
    values: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GrowDisk(_OnHost):
    """``PUT /nodes/{host}/qemu/{vmid}/resize`` to ``size_bytes`` (absolute; never shrinks)."""

    kind: ClassVar[str] = "grow_disk"
    phase: ClassVar[int] = 3
    disk: str
    size_bytes: int
    current_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Cordon(_OnNode):
    """Mark the node unschedulable (and annotate ``provisiond.dev/cordoned``)."""

    kind: ClassVar[str] = "cordon"
    phase: ClassVar[int] = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Drain(_OnNode):
    """Evict the node's pods through the Eviction API (PDBs honoured; DaemonSet and mirror pods
    stay); ``timeout`` seconds of blocked evictions, then it fails and the node stays cordoned.
    ``delete_empty_dir_data``: pods with ``emptyDir`` volumes are evicted too (else refused)."""

    kind: ClassVar[str] = "drain"
    phase: ClassVar[int] = 5
    timeout: float = 600.0
    delete_empty_dir_data: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(_OnHost):
    """``POST …/status/shutdown``; ``force_stop`` after the timeout when the policy allows."""

    kind: ClassVar[str] = "shutdown"
    phase: ClassVar[int] = 6
    force_stop: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Reboot(_OnHost):
    """``POST …/status/reboot`` to apply pending config changes (``keys``)."""

    kind: ClassVar[str] = "reboot"
    phase: ClassVar[int] = 6
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Start(_OnHost):
    """``POST …/status/start``."""

    kind: ClassVar[str] = "start"
    phase: ClassVar[int] = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class Uncordon(_OnNode):
    """Mark the node schedulable again (and drop ``provisiond.dev/cordoned``)."""

    kind: ClassVar[str] = "uncordon"
    phase: ClassVar[int] = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Label(_OnNode):
    """``PATCH`` node labels: set ``labels``, remove ``remove``, record ``managed``.

    ``managed`` is the full new value of ``provisiond.dev/managed`` (labels *and* taints), so a
    ``Label`` and a ``Taint`` of the same plan write the same annotation.
    """

    kind: ClassVar[str] = "label"
    phase: ClassVar[int] = 8
    labels: Mapping[str, str] = field(default_factory=dict)  # to set
    remove: tuple[str, ...] = ()
    managed: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaintNode(_OnNode):
    """``PATCH`` node taints: remove ``remove`` (matched by key and effect), then add ``add``."""

    kind: ClassVar[str] = "taint"
    phase: ClassVar[int] = 8
    add: tuple[Taint, ...] = ()
    remove: tuple[Taint, ...] = ()
    managed: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Destroy(_OnHost):
    """``DELETE /nodes/{host}/qemu/{vmid}`` (``purge=1``); stop first when ``running``."""

    kind: ClassVar[str] = "destroy"
    phase: ClassVar[int] = 9
    fleet: str
    running: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _OnHaRule(_Base):
    """An action on a PVE 9.x HA rule provisiond owns (``placement.publishHaRules``).

    ``vmid`` is ``HA_RULES_VMID`` for every rule action: they all write one file
    (``/etc/pve/ha/rules.cfg``), so the executor runs them one at a time and backs them off
    together; none is about one VM. A synchronous API call: no task.
    """

    fleet: str
    rule: HaRule  # create/update: the rule as it must be; delete: as it was observed
    vmid: int = HA_RULES_VMID

    @property
    def name(self) -> str:
        return self.rule.rule


@dataclass(frozen=True, slots=True, kw_only=True)
class HaRuleCreate(_OnHaRule):
    """``POST /cluster/ha/rules``. Early (phase 1): a VM's move waits for its rule, which then
    agrees with the move's target."""

    kind: ClassVar[str] = "ha_rule_create"
    phase: ClassVar[int] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class HaRuleUpdate(_OnHaRule):
    """``PUT /cluster/ha/rules/{rule}`` with every option of ``rule`` (``disable=0``)."""

    kind: ClassVar[str] = "ha_rule_update"
    phase: ClassVar[int] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class HaRuleDelete(_OnHaRule):
    """``DELETE /cluster/ha/rules/{rule}`` of a rule provisiond owns."""

    kind: ClassVar[str] = "ha_rule_delete"
    phase: ClassVar[int] = 9


Action = (
    Clone
    | Migrate
    | GpuMove
    | Configure
    | GrowDisk
    | Cordon
    | Drain
    | Shutdown
    | Reboot
    | Start
    | Uncordon
    | Label
    | TaintNode
    | Destroy
    | HaRuleCreate
    | HaRuleUpdate
    | HaRuleDelete
)
HaRuleAction = HaRuleCreate | HaRuleUpdate | HaRuleDelete


def hosts_of(action: Action) -> tuple[str, ...]:
    """The Proxmox hosts an action acts on: a migration's source, then its target; none for a
    Kubernetes node action or an HA rule (a cluster-wide config file, no host's load). The
    executor's per-host limit counts these; the plan report shows the last (where the VM ends)."""
    match action:
        case Clone():
            return (action.target or action.template_host,)
        case Migrate() | GpuMove():
            return (action.source, action.target)
        case Configure() | GrowDisk() | Shutdown() | Reboot() | Start() | Destroy():
            return (action.host,)
        case Cordon() | Drain() | Uncordon() | Label() | TaintNode():
            return ()
        case HaRuleCreate() | HaRuleUpdate() | HaRuleDelete():
            return ()
        case _:  # pragma: no cover - unreachable: mypy proves the match exhaustive
            assert_never(action)
