"""The state one ``plan()`` call shares between its steps.

``PlanState`` holds three groups of fields:
- *indexes* of the inputs (``fleets``, ``by_vmid``, ``by_name``, ``nodes``, ``tasks_by_id``,
  ``clones``), built once by ``PlanState.start`` and never changed afterwards;
- the *ledger*: ``sched`` (every observed VM's load on its host, then every planned clone and
  move), ``accounted`` (vmid -> the host and demand ``sched`` holds for it), ``members``
  ((fleet, pool, host) -> sorted VMIDs, for strict spread), ``matched`` and ``budget`` (the
  disruptions left per fleet and pool);
- the *output*: ``actions`` in emission order, ``blocked``, ``conflicts``, ``waiting``, and what
  the plan does to VMs (``busy``: powered, moved or drained; ``disrupted``; ``stopped``).

Invariants: only ``emit`` appends to ``actions``, and it chains every action after the VM's
previous one (``last``), so one VM's actions run in emission order; a state is used by one
``plan()`` call and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from provisiond.core.actions import Action
from provisiond.core.desired import DesiredFleet, DesiredState, DesiredVM
from provisiond.core.guards import DisruptionBudget
from provisiond.core.observed import KubeNode, ObservedState, ObservedVM
from provisiond.core.plan import Blocked, Conflict, Waiting
from provisiond.core.scheduler import NOT_OBSERVED, Blind, Demand, Scheduler

_IN_PLACE = frozenset({"configure", "grow_disk", "label", "taint"})  # compatible with a move


@dataclass(frozen=True, slots=True)
class Match:
    """A desired VM and the observed VM this plan manages as it (owned or adopted)."""

    d: DesiredVM
    vm: ObservedVM


@dataclass(slots=True)
class PlanState:
    observed: ObservedState
    now: float
    # indexes of the inputs
    fleets: dict[str, DesiredFleet]
    by_vmid: dict[int, ObservedVM]
    by_name: dict[str, list[ObservedVM]]
    nodes: dict[str, KubeNode] | None
    tasks_by_id: dict[str, list[str]]
    clones: dict[int | None, float | None]  # template VMID -> clone task start
    # the ledger
    sched: Scheduler
    budget: DisruptionBudget
    node_join_timeout: float = 900.0  # a running VM's node missing longer than this: reported
    matched: dict[int, Match] = field(default_factory=dict)
    accounted: dict[int, tuple[str, Demand]] = field(default_factory=dict)
    members: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    reserved: dict[str, list[int]] = field(default_factory=dict)  # host -> VMs in flight to it
    overclaimed: dict[int, str] = field(default_factory=dict)  # vmid -> the over-assignment
    # the output
    actions: list[Action] = field(default_factory=list)
    last: dict[int, str] = field(default_factory=dict)  # vmid -> id of its latest action
    busy: set[int] = field(default_factory=set)  # VMs this plan powers, moves or drains
    disrupted: set[int] = field(default_factory=set)
    out: set[int] = field(default_factory=set)  # nodes already out, counted in ``budget``
    stopped: set[int] = field(default_factory=set)  # running VMs this plan shuts down
    blocked: list[Blocked] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        desired: DesiredState,
        observed: ObservedState,
        now: float,
        node_join_timeout: float = 900.0,
    ) -> PlanState:
        fleets = {f.name: f for f in desired.fleets}
        by_name: dict[str, list[ObservedVM]] = {}
        for v in observed.vms:
            by_name.setdefault(v.name, []).append(v)
        tasks_by_id: dict[str, list[str]] = {}
        clones: dict[int | None, float | None] = {}
        for t in observed.tasks:
            tasks_by_id.setdefault(t.id, []).append(t.type)
            if t.type == "qmclone" and t.id.isdigit():
                clones.setdefault(int(t.id), t.started)
        return cls(
            observed=observed,
            now=now,
            fleets=fleets,
            by_vmid={v.vmid: v for v in observed.vms},
            by_name=by_name,
            nodes={n.name: n for n in observed.kube} if observed.kube is not None else None,
            tasks_by_id=tasks_by_id,
            clones=clones,
            sched=Scheduler(observed.hosts, observed.mappings, blind(observed)),
            budget=DisruptionBudget(fleets),
            node_join_timeout=node_join_timeout,
        )

    def emit(self, action: Action, vmid: int, *extra_after: str) -> str:
        """Append ``action`` after the VM's previous action (and ``extra_after``)."""
        prev = (self.last[vmid],) if vmid in self.last else ()
        after = tuple(dict.fromkeys((*prev, *extra_after)))
        self.actions.append(replace(action, after=after))
        self.last[vmid] = action.id
        if action.kind not in _IN_PLACE:
            self.busy.add(vmid)
        return action.id

    def block(self, code: str, reason: str, d: DesiredVM) -> None:
        self.blocked.append(Blocked(code, reason, d.vmid, d.name, d.fleet))

    def wait(self, why: str, d: DesiredVM) -> None:
        self.waiting.append(Waiting(why, d.vmid, d.name))

    def unseen(self, what: str, d: DesiredVM, decision: str = "") -> None:
        """``d`` waits: ``what`` (a decision of it rests on) was not observed this cycle."""
        self.wait(f"{NOT_OBSERVED}{what}" + (f" ({decision})" if decision else ""), d)

    def since(self, what: str, started: float | None) -> str:
        return f"{what} for {max(0, int(self.now - started))} s" if started else what

    def fleet(self, d: DesiredVM) -> DesiredFleet:
        return self.fleets[d.fleet]


def blind(o: ObservedState) -> Blind:
    """What placement cannot see this cycle: hosts whose storage list failed; per host, what
    hides its GPU claims (its PCI list, or a VM on it whose config was not read)."""
    u = o.unobserved
    gpus = {h: f"PCI devices of host {h}" for h in u.pci}
    for v in sorted(o.vms, key=lambda v: v.vmid):
        if v.config is None and not v.template:
            gpus.setdefault(v.host, f"config of VM {v.vmid}")
    return Blind(frozenset(u.storage), gpus, u.mappings)
