"""The planner: ``plan(desired, observed, *, now) -> Plan``. Pure: no I/O, clock or randomness.

Steps, each deterministic (VMIDs and host names sorted):
1. match every desired VM to what holds its VMID (ownership, adoption, conflicts, work under way);
2. account every observed VM on its host (scheduler loads);
3. existing VMs: move when misplaced (maintenance, pin, allowed hosts, strict spread, no room to
   grow), configure spec-owned keys, grow disks, apply pending changes, power, node labels/taints;
4. missing VMs: GPU VMs first, place, clone (on the template's host and migrate when the target
   cannot be reached directly), configure, grow, start;
5. opt-in rebalance; 6. prune, last.

Invariants (tests): an unowned VM is never acted on; an unobserved one (unknown status, config
not read, a failed list) is never cloned over or destroyed; the daemon's own VM is never shut
down, rebooted, moved offline or destroyed; ``pd-paused`` VMs are left alone; with no Kubernetes
configured no Kubernetes action is planned; applying the plan and replanning gives no actions.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, replace

from provisiond.core.actions import (
    Action,
    Clone,
    Configure,
    Cordon,
    Destroy,
    Drain,
    GpuMove,
    GrowDisk,
    Label,
    Migrate,
    MoveStep,
    Reboot,
    Shutdown,
    Start,
    TaintNode,
    Uncordon,
)
from provisiond.core.desired import (
    CloneMode,
    DesiredFleet,
    DesiredState,
    DesiredVM,
    PowerState,
    Spread,
    ownership_marker,
)
from provisiond.core.drift import Drift, config_drift, grow_disks
from provisiond.core.guards import DisruptionBudget, destroy_refusal, empty_refusal
from provisiond.core.nodes import diff_node
from provisiond.core.observed import (
    CORDONED_ANNOTATION,
    PAUSED_ANNOTATION,
    KubeNode,
    ObservedState,
    ObservedVM,
    VMConfig,
    VMStatus,
)
from provisiond.core.ownership import owner, paused
from provisiond.core.plan import Blocked, Conflict, Plan, Waiting
from provisiond.core.rebalance import Candidate, over, shed
from provisiond.core.scheduler import Constraints, Demand, Scheduler
from provisiond.core.units import format_size

_IN_PLACE = frozenset({"configure", "grow_disk", "label", "taint"})  # compatible with a move
_DISRUPTING_TASKS = frozenset({"qmigrate", "hamigrate", "qmshutdown", "qmreboot"})


def plan(desired: DesiredState, observed: ObservedState, *, now: float) -> Plan:
    return _Planner(desired, observed, now).run()


@dataclass(frozen=True, slots=True)
class _Match:
    d: DesiredVM
    vm: ObservedVM


class _Planner:
    def __init__(self, desired: DesiredState, observed: ObservedState, now: float) -> None:
        self.o = observed
        self.now = now
        self.fleets = {f.name: f for f in desired.fleets}
        self.by_vmid = {v.vmid: v for v in observed.vms}
        self.by_name: dict[str, list[ObservedVM]] = {}
        for v in observed.vms:
            self.by_name.setdefault(v.name, []).append(v)
        self.nodes = {n.name: n for n in observed.kube} if observed.kube is not None else None
        self.tasks_by_id: dict[str, list[str]] = {}
        self.clones: dict[int | None, float | None] = {}  # template VMID -> clone task start
        for t in observed.tasks:
            self.tasks_by_id.setdefault(t.id, []).append(t.type)
            if t.type == "qmclone" and t.id.isdigit():
                self.clones.setdefault(int(t.id), t.started)
        self.actions: list[Action] = []
        self.last: dict[int, str] = {}  # vmid -> id of its latest action (per-VM order)
        self.busy: set[int] = set()  # VMs this plan powers, moves or drains
        self.blocked: list[Blocked] = []
        self.conflicts: list[Conflict] = []
        self.waiting: list[Waiting] = []
        self.matched: dict[int, _Match] = {}
        self.disrupted: set[int] = set()
        self.stopped: set[int] = set()  # running VMs this plan shuts down
        self.sched = Scheduler(observed.hosts, observed.mappings)
        self.accounted: dict[int, tuple[str, Demand]] = {}
        self.members: dict[tuple[str, str, str], list[int]] = {}  # (fleet, pool, host) -> VMIDs
        self.budget = DisruptionBudget(self.fleets)

    # -- output helpers ------------------------------------------------------------------------

    def _emit(self, action: Action, vmid: int, *extra_after: str) -> str:
        prev = (self.last[vmid],) if vmid in self.last else ()
        after = tuple(dict.fromkeys((*prev, *extra_after)))
        self.actions.append(replace(action, after=after))
        self.last[vmid] = action.id
        if action.kind not in _IN_PLACE:
            self.busy.add(vmid)
        return action.id

    def _grow_disks(self, d: DesiredVM, cfg: VMConfig, host: str, *, new_clone: bool) -> None:
        for slot, size, current in grow_disks(d, cfg):
            want, have = format_size(size), format_size(current)
            self._emit(
                GrowDisk(
                    id=f"grow_disk:{d.vmid}:{slot}",
                    reason=(
                        f"new clone: grow {slot} from the template's {have} to {want}"
                        if new_clone
                        else f"{slot} is {have}, spec says {want} (disks only grow)"
                    ),
                    vmid=d.vmid,
                    name=d.name,
                    host=host,
                    disk=slot,
                    size_bytes=size,
                    current_bytes=current,
                ),
                d.vmid,
            )

    def _block(self, code: str, reason: str, d: DesiredVM) -> None:
        self.blocked.append(Blocked(code, reason, d.vmid, d.name, d.fleet))

    # -- 1. matching ---------------------------------------------------------------------------

    def run(self) -> Plan:
        if not self.fleets:
            self.blocked.append(Blocked("empty_spec", "no fleet declared: nothing is planned"))
            return self._plan()
        refused: set[str] = set()
        for fleet in self.fleets.values():
            why = empty_refusal(fleet)
            if why is not None:
                refused.add(fleet.name)
                self.blocked.append(Blocked("empty_spec", why, fleet=fleet.name))
        every = sorted((vm for f in self.fleets.values() for vm in f.vms), key=lambda d: d.vmid)
        missing = [d for d in every if self._match(d)]
        self._account()
        for vmid in sorted(self.matched):
            self._manage(self.matched[vmid])
        for d in sorted(missing, key=lambda d: (d.gpus is None, d.vmid)):
            self._create(d)
        for name in sorted(self.fleets):
            if self.fleets[name].policy.rebalance.enabled:
                self._rebalance(self.fleets[name])
        for name in sorted(self.fleets):
            if self.fleets[name].policy.prune and name not in refused:
                self._prune(self.fleets[name])
        return self._plan()

    def _match(self, d: DesiredVM) -> bool:
        """Record how ``d`` relates to what is observed; True when its VMID is free."""
        fleet = self.fleets[d.fleet]
        vm = self.by_vmid.get(d.vmid)
        twins = [v.vmid for v in self.by_name.get(d.name, []) if v.vmid != d.vmid]
        if twins:
            self.conflicts.append(
                Conflict(f"name {d.name} is used by VMID {twins[0]}", d.vmid, d.name, d.fleet)
            )
        if vm is None:
            return not twins
        if vm.template:
            self.conflicts.append(
                Conflict(f"VMID {d.vmid} is a template ({vm.name})", d.vmid, d.name, d.fleet)
            )
            return False
        if vm.lock == "clone":
            tmpl, _ = self._template(d)
            key = tmpl.vmid if tmpl else None
            if key not in self.clones:
                self._block(
                    "stuck_clone",
                    f"VMID {d.vmid} is a clone placeholder (lock: clone) and no clone task runs:"
                    " stuck; provisiond never unlocks",
                    d,
                )
            else:
                since = self._since("clone running", self.clones[key])
                self.waiting.append(Waiting(since, d.vmid, d.name))
            return False
        own = owner(vm)
        if own == d.fleet or (own is None and fleet.policy.adopt and vm.name == d.name):
            self.matched[d.vmid] = _Match(d, vm)
            return False
        if own is not None:
            why = f"VMID {d.vmid} belongs to fleet {own}"
        elif fleet.policy.adopt:
            why = f"VMID {d.vmid} holds {vm.name!r}, not {d.name!r}: not adopted"
        else:
            why = f"VMID {d.vmid} holds {vm.name!r}, not owned by provisiond (adopt is off)"
        self.conflicts.append(Conflict(why, d.vmid, d.name, d.fleet))
        return False

    def _since(self, what: str, started: float | None) -> str:
        return f"{what} for {max(0, int(self.now - started))} s" if started else what

    # -- 2. accounting -------------------------------------------------------------------------

    def _demand(self, vm: ObservedVM, d: DesiredVM | None) -> Demand:
        storages = tuple(sorted({x.storage for x in vm.config.disks.values()})) if vm.config else ()
        if d is None:
            return Demand(vm.cores, vm.memory_mib, vm.gpu_claims(), storages=storages)
        return Demand(
            vm.cores, vm.memory_mib, vm.gpu_claims(), (d.fleet, d.pool), d.spread, storages
        )

    def _account(self) -> None:
        for vm in self.o.vms:
            if vm.template:
                continue
            m = self.matched.get(vm.vmid)
            demand = self._demand(vm, m.d if m else None)
            self.sched.add(vm.host, demand)
            self.accounted[vm.vmid] = (vm.host, demand)
            if m is not None:
                self.members.setdefault((m.d.fleet, m.d.pool, vm.host), []).append(vm.vmid)
            if m is not None and (
                vm.lock == "migrate"
                or _DISRUPTING_TASKS & set(self.tasks_by_id.get(str(vm.vmid), ()))
            ):
                self.budget.count(m.d.fleet, m.d.pool)
        for members in self.members.values():
            members.sort()

    def _reaccount(self, vmid: int, host: str, demand: Demand) -> None:
        old_host, old = self.accounted[vmid]
        self.sched.remove(old_host, old)
        self.sched.add(host, demand)
        self.accounted[vmid] = (host, demand)
        if old_host != host and demand.group is not None:
            self.members[(*demand.group, old_host)].remove(vmid)
            bisect.insort(self.members.setdefault((*demand.group, host), []), vmid)

    # -- 3. existing VMs -----------------------------------------------------------------------

    def _constraints(self, d: DesiredVM, *exclude: str) -> Constraints:
        policy = self.fleets[d.fleet].policy
        hosts = (d.host,) if d.host else d.allowed_hosts
        return Constraints(policy.overcommit, hosts, (*policy.maintenance, *exclude))

    def _misplaced(self, d: DesiredVM, vm: ObservedVM) -> str | None:
        policy = self.fleets[d.fleet].policy
        if vm.host in policy.maintenance:
            return f"host {vm.host} is in maintenance"
        if d.host and vm.host != d.host:
            return f"pinned to {d.host}"
        if d.allowed_hosts is not None and vm.host not in d.allowed_hosts:
            return f"{vm.host} is not among its allowed hosts"
        if d.spread is Spread.STRICT:
            first = self.members.get((d.fleet, d.pool, vm.host), [d.vmid])[0]
            if first != d.vmid:
                return f"strict spread: shares {vm.host} with {self.matched[first].d.name}"
        return None

    def _manage(self, m: _Match) -> None:
        d, vm = m.d, m.vm
        if vm.status is VMStatus.UNKNOWN:
            self._block("unknown_status", f"host {vm.host} did not answer: unknown, not missing", d)
            return
        if paused(vm):
            self._block("paused", "tagged pd-paused: left alone", d)
            return
        if vm.config is None:
            self._block("config_unobserved", "config could not be read this cycle", d)
            return
        if vm.lock is not None:
            self.waiting.append(Waiting(f"locked ({vm.lock}): retried next cycle", d.vmid, d.name))
            return
        tasks = self.tasks_by_id.get(str(d.vmid))
        if tasks:
            self.waiting.append(Waiting(f"task {tasks[0]} running", d.vmid, d.name))
            return
        cfg = vm.config
        host, now_demand = self.accounted[d.vmid]
        claims = dict(now_demand.gpus)
        if d.gpus is not None:
            claims[d.gpus.mapping] = max(claims.get(d.gpus.mapping, 0), d.gpus.count)
        want = replace(
            now_demand,
            cores=max(vm.cores, d.cores),
            memory_mib=max(vm.memory_mib, d.memory_mib),
            gpus=claims,
        )
        room = None
        if want != now_demand:
            self.sched.remove(host, now_demand)
            grown = replace(want, spread=Spread.PREFERRED)  # its own place is not in question
            room = self.sched.refusal(host, grown, Constraints(self._fleet(d).policy.overcommit))
            self.sched.add(host, now_demand)
        move_why = self._misplaced(d, vm)
        if move_why is None and room is not None:
            move_why = f"{host} has no room for its new size ({room})"
        running = vm.status is VMStatus.RUNNING
        stopping = running and d.power is PowerState.STOPPED
        node = self._node(d)
        move = self._move_plan(d, vm, want, why=move_why, running=running and not stopping)

        default_storage = d.storage or next((x.storage for x in cfg.disks.values()), None)
        drift = config_drift(d, vm.pending or cfg, default_storage=default_storage)
        pending: list[str] = []
        if vm.pending is not None:
            unapplied = config_drift(d, cfg, default_storage=default_storage)
            pending = sorted(unapplied.keys - drift.keys)
        if move is None and room is not None:
            grow = {"cores", "memory"} | {k for k in drift.values if k.startswith("hostpci")}
            kept = sorted(grow & drift.values.keys())
            drift = Drift({k: v for k, v in drift.values.items() if k not in grow}, drift.delete)
            self._block("no_room", f"not resized ({', '.join(kept)}): {move_why}", d)
            want = now_demand
        if drift:
            adopt = "adopt: " if owner(vm) is None else ""
            self._emit(
                Configure(
                    id=f"configure:{d.vmid}",
                    reason=f"{adopt}set {', '.join(sorted(drift.keys))}",
                    vmid=d.vmid,
                    name=d.name,
                    host=vm.host,
                    values=drift.values,
                    delete=drift.delete,
                ),
                d.vmid,
            )
        if stopping and self._power_off(d, vm, node, "desired power state is stopped"):
            running = False

        final_host, restarted = vm.host, False
        if move is not None:
            target, offline = move
            self._emit_move(
                d, vm, want, target=target, offline=offline, why=move_why or "", node=node
            )
            final_host, restarted = target, offline
        else:
            self._reaccount(d.vmid, host, want)

        self._grow_disks(d, cfg, final_host, new_clone=False)

        if pending and running and not restarted:
            self._apply_pending(d, final_host, pending, node)

        if d.power is PowerState.RUNNING and vm.status is not VMStatus.RUNNING:
            if vm.status is VMStatus.PAUSED:
                self._block("vm_paused", "VM is paused in QEMU: not resumed by provisiond", d)
            else:
                self._emit(
                    Start(
                        id=f"start:{d.vmid}",
                        reason="desired power state is running",
                        vmid=d.vmid,
                        name=d.name,
                        host=final_host,
                    ),
                    d.vmid,
                )
        if node is not None:
            self._kube(d, vm, node)

    def _fleet(self, d: DesiredVM) -> DesiredFleet:
        return self.fleets[d.fleet]

    def _node(self, d: DesiredVM) -> KubeNode | None:
        if d.kubernetes is None or self.nodes is None:
            return None
        node = self.nodes.get(d.kubernetes.node_name)
        if node is None or PAUSED_ANNOTATION in node.annotations:
            return None
        return node

    def _self_guard(self, d: DesiredVM, what: str) -> bool:
        if d.vmid == self.o.self_vmid:
            self._block("self", f"provisiond runs in this VM: never {what} by itself", d)
            return True
        return False

    def _disrupt(self, d: DesiredVM, why: str) -> bool:
        """Take a disruption from the budget, or report why not (and return False)."""
        refusal = self.budget.take(d.fleet, d.pool)
        if refusal is not None:
            self._block("disruption_limit", f"{why}: deferred, {refusal}", d)
            return False
        self.disrupted.add(d.vmid)
        return True

    def _kube_unobserved(self, d: DesiredVM) -> bool:
        if d.kubernetes is not None and self.o.unobserved.kubernetes:
            self._block(
                "kube_unobserved", "Kubernetes could not be read: its node cannot be drained", d
            )
            return True
        return False

    def _drain(self, d: DesiredVM, node: KubeNode | None, why: str) -> None:
        if node is None:
            return
        if not node.unschedulable:
            self._emit(
                Cordon(id=f"cordon:{node.name}", reason=why, node=node.name, vmid=d.vmid), d.vmid
            )
        self._emit(Drain(id=f"drain:{node.name}", reason=why, node=node.name, vmid=d.vmid), d.vmid)

    def _power_off(self, d: DesiredVM, vm: ObservedVM, node: KubeNode | None, why: str) -> bool:
        if self._self_guard(d, "shut down") or self._kube_unobserved(d):
            return False
        if not self._disrupt(d, why):
            return False
        self._drain(d, node, why)
        self.stopped.add(d.vmid)
        self._emit(
            Shutdown(
                id=f"shutdown:{d.vmid}",
                reason=why,
                vmid=d.vmid,
                name=d.name,
                host=vm.host,
                force_stop=self._fleet(d).policy.force_stop_after_shutdown_timeout,
            ),
            d.vmid,
        )
        return True

    def _apply_pending(
        self, d: DesiredVM, host: str, keys: list[str], node: KubeNode | None
    ) -> None:
        why = f"pending changes to {', '.join(keys)} need a reboot"
        if not self._fleet(d).policy.reboot_for_pending:
            self._block("pending_reboot", f"{why} (rebootForPending is off)", d)
            return
        if self._self_guard(d, "rebooted") or self._kube_unobserved(d) or not self._disrupt(d, why):
            return
        self._drain(d, node, why)
        self._emit(
            Reboot(
                id=f"reboot:{d.vmid}",
                reason=why,
                vmid=d.vmid,
                name=d.name,
                host=host,
                keys=tuple(keys),
            ),
            d.vmid,
        )
        if node is not None:
            self._emit(
                Uncordon(id=f"uncordon:{node.name}", reason=why, node=node.name, vmid=d.vmid),
                d.vmid,
            )

    def _local_disks(self, vm: ObservedVM) -> bool:
        host = self.sched.hosts.get(vm.host)
        disks = vm.config.disks.values() if vm.config else ()
        for disk in disks:
            s = host.storage(disk.storage) if host else None
            if s is None or not s.shared:
                return True
        return False

    def _move_plan(
        self, d: DesiredVM, vm: ObservedVM, want: Demand, *, why: str | None, running: bool
    ) -> tuple[str, bool] | None:
        """(target, offline) when ``vm`` must and may move now; else None (reported)."""
        if why is None:
            return None
        raw = vm.raw_pci()
        if raw:
            self._block(
                "raw_pci", f"{why}, but {', '.join(raw)} passes a raw device: cannot move", d
            )
            return None
        source, now_demand = self.accounted[d.vmid]
        self.sched.remove(source, now_demand)
        target, refusals = self.sched.place(want, self._constraints(d, source))
        self.sched.add(source, now_demand)
        if target is None:
            self._block("no_target", f"{why}, but no host fits ({refusals})", d)
            return None
        maps = [self.sched.mappings.get(m) for m in want.gpus]
        offline = running and any(mp is None or not mp.live_migration for mp in maps)
        if offline and (self._self_guard(d, "migrated offline") or self._kube_unobserved(d)):
            return None
        if running and not self._disrupt(d, why):
            return None
        return target, offline

    def _emit_move(
        self,
        d: DesiredVM,
        vm: ObservedVM,
        want: Demand,
        *,
        target: str,
        offline: bool,
        why: str,
        node: KubeNode | None,
    ) -> None:
        source = self.accounted[d.vmid][0]
        self._reaccount(d.vmid, target, want)
        local = self._local_disks(vm)
        reason = f"{why}: move {source} -> {target}"
        if not offline:
            online = vm.status is VMStatus.RUNNING and d.vmid not in self.stopped
            self._emit(
                self._migrate(
                    d.vmid,
                    d.name,
                    source=source,
                    target=target,
                    online=online,
                    local=local,
                    reason=reason,
                ),
                d.vmid,
            )
            return
        steps = [MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START]
        if node is not None:
            steps = [
                MoveStep.CORDON,
                MoveStep.DRAIN,
                *steps,
                MoveStep.WAIT_READY,
                MoveStep.UNCORDON,
            ]
        self._emit(
            GpuMove(
                id=f"gpu_move:{d.vmid}",
                reason=reason,
                vmid=d.vmid,
                name=d.name,
                source=source,
                target=target,
                node=node.name if node is not None else None,
                steps=tuple(steps),
                with_local_disks=local,
                force_stop=self._fleet(d).policy.force_stop_after_shutdown_timeout,
            ),
            d.vmid,
        )

    @staticmethod
    def _migrate(
        vmid: int, name: str, *, source: str, target: str, online: bool, local: bool, reason: str
    ) -> Migrate:
        return Migrate(
            id=f"migrate:{vmid}",
            reason=reason,
            vmid=vmid,
            name=name,
            source=source,
            target=target,
            online=online,
            with_local_disks=local,
        )

    def _kube(self, d: DesiredVM, vm: ObservedVM, node: KubeNode) -> None:
        assert d.kubernetes is not None
        diff = diff_node(d.kubernetes, node)
        if diff.labels_changed or (diff.record_changed and not diff.taints_changed):
            changes = [f"{k}={v}" for k, v in diff.set_labels.items()]
            changes += [f"-{k}" for k in diff.remove_labels]
            self._emit(
                Label(
                    id=f"label:{node.name}",
                    reason="labels " + (", ".join(changes) or "recorded as managed"),
                    node=node.name,
                    vmid=d.vmid,
                    labels=diff.set_labels,
                    remove=diff.remove_labels,
                    managed=diff.record,
                ),
                d.vmid,
            )
        if diff.taints_changed:
            changes = [str(t) for t in diff.add_taints] + [f"-{t}" for t in diff.remove_taints]
            self._emit(
                TaintNode(
                    id=f"taint:{node.name}",
                    reason="taints " + ", ".join(changes),
                    node=node.name,
                    vmid=d.vmid,
                    add=diff.add_taints,
                    remove=diff.remove_taints,
                    managed=diff.record,
                ),
                d.vmid,
            )
        if (
            node.unschedulable
            and CORDONED_ANNOTATION in node.annotations
            and vm.status is VMStatus.RUNNING
            and d.power is PowerState.RUNNING
            and d.vmid not in self.disrupted
        ):
            self._emit(
                Uncordon(
                    id=f"uncordon:{node.name}",
                    reason="provisiond cordoned this node for work that has finished",
                    node=node.name,
                    vmid=d.vmid,
                ),
                d.vmid,
            )

    # -- 4. missing VMs ------------------------------------------------------------------------

    def _template(self, d: DesiredVM) -> tuple[ObservedVM | None, str]:
        ref = d.template
        if ref.vmid is not None:
            t = self.by_vmid.get(ref.vmid)
            if t is None or not t.template:
                return None, f"template VMID {ref.vmid} not found (or not a template)"
            return t, ""
        cands = [v for v in self.by_name.get(ref.name or "", []) if v.template]
        if not cands:
            return None, f"no template named {ref.name!r}"
        if len(cands) > 1:
            ids = ", ".join(str(v.vmid) for v in sorted(cands, key=lambda v: v.vmid))
            return None, f"template name {ref.name!r} is ambiguous (VMIDs {ids})"
        return cands[0], ""

    def _create(self, d: DesiredVM) -> None:
        if not self.o.unobserved.vmids_trustworthy:
            failed = ", ".join(self.o.unobserved.lists)
            self._block("observation_incomplete", f"not cloned: could not read {failed}", d)
            return
        tmpl, why = self._template(d)
        if tmpl is None:
            self._block("template", f"not cloned: {why}", d)
            return
        if tmpl.status is VMStatus.UNKNOWN or tmpl.config is None:
            self._block("template", f"not cloned: template {tmpl.name} is not observed", d)
            return
        if tmpl.vmid in self.clones:
            why = f"a clone of template {tmpl.name} is running; waiting for VMID {d.vmid}"
            self.waiting.append(Waiting(self._since(why, self.clones[tmpl.vmid]), d.vmid, d.name))
            return
        tcfg = tmpl.config
        full = d.clone_mode is CloneMode.FULL
        tstorages = sorted({x.storage for x in tcfg.disks.values()})
        storages = {d.storage} if full and d.storage else set(tstorages)
        storages |= {x.storage for x in d.disks if x.storage}
        demand = Demand(
            d.cores,
            d.memory_mib,
            {d.gpus.mapping: d.gpus.count} if d.gpus else {},
            (d.fleet, d.pool),
            d.spread,
            tuple(sorted(storages)),
        )
        target, refusals = self.sched.place(demand, self._constraints(d))
        if target is None:
            self._block("no_target", f"not cloned: no host fits ({refusals})", d)
            return
        thost = self.sched.hosts.get(tmpl.host)
        shared = thost is not None and all(
            (s := thost.storage(x)) is not None and s.shared for x in tstorages
        )
        if full and d.storage:
            s = self.sched.hosts[target].storage(d.storage)
            shared = shared and s is not None and s.shared
        direct = target == tmpl.host or shared
        if not direct and full and d.storage and (thost is None or not thost.storage(d.storage)):
            why = f"{target} cannot reach {tmpl.name}'s storage, {tmpl.host} has no {d.storage}"
            self._block("no_target", f"not cloned: {why}", d)
            return
        lands = target if direct else tmpl.host
        self.sched.add(target, demand)
        self.accounted[d.vmid] = (target, demand)
        self._emit(
            Clone(
                id=f"clone:{d.vmid}",
                reason=f"VMID {d.vmid} does not exist; clone {tmpl.name} onto {target}",
                vmid=d.vmid,
                name=d.name,
                fleet=d.fleet,
                pool=d.pool,
                template_vmid=tmpl.vmid,
                template_host=tmpl.host,
                target=None if lands == tmpl.host else lands,
                full=full,
                storage=d.storage if full else None,
                proxmox_pool=d.proxmox_pool,
                description=ownership_marker(d.fleet, d.name),
            ),
            d.vmid,
        )
        if not direct:
            why = f"{target} cannot reach {tmpl.name}'s storage: cloned on {tmpl.host}, moved"
            move = self._migrate(
                d.vmid,
                d.name,
                source=tmpl.host,
                target=target,
                online=False,
                local=True,
                reason=why,
            )
            self._emit(move, d.vmid)
        fresh = _as_cloned(tcfg)
        default_storage = d.storage if full and d.storage else next(iter(tstorages), None)
        drift = config_drift(d, fresh, default_storage=default_storage)
        if drift:
            self._emit(
                Configure(
                    id=f"configure:{d.vmid}",
                    reason="new clone: set " + ", ".join(sorted(drift.keys)),
                    vmid=d.vmid,
                    name=d.name,
                    host=target,
                    values=drift.values,
                    delete=drift.delete,
                ),
                d.vmid,
            )
        self._grow_disks(d, fresh, target, new_clone=True)
        if d.power is PowerState.RUNNING:
            self._emit(
                Start(
                    id=f"start:{d.vmid}",
                    reason="new clone: start",
                    vmid=d.vmid,
                    name=d.name,
                    host=target,
                ),
                d.vmid,
            )

    # -- 5. rebalance --------------------------------------------------------------------------

    def _rebalance(self, fleet: DesiredFleet) -> None:
        policy = fleet.policy
        by_host: dict[str, list[Candidate]] = {}
        for vmid in sorted(self.matched):
            m = self.matched[vmid]
            d, vm = m.d, m.vm
            if d.fleet != fleet.name or not self._movable(d, vm):
                continue
            host, demand = self.accounted[vmid]
            by_host.setdefault(host, []).append(Candidate(vmid, demand, self._constraints(d, host)))
        base = Constraints(policy.overcommit)
        for host in sorted(self.sched.hosts):
            if not self.sched.hosts[host].online or host in policy.maintenance:
                continue
            if not over(self.sched, host, base, policy.rebalance):
                continue

            def admit(vmid: int, host: str = host) -> bool:
                m = self.matched[vmid]
                if m.vm.status is not VMStatus.RUNNING:
                    return True
                return self._disrupt(m.d, f"rebalance {host}")

            moves = shed(self.sched, host, by_host.get(host, []), policy.rebalance, admit)
            for vmid, target in moves:
                m = self.matched[vmid]
                self.disrupted.add(vmid)
                self.accounted[vmid] = (target, self.accounted[vmid][1])
                reason = f"rebalance: {host} is above its thresholds; move to {target}"
                running = m.vm.status is VMStatus.RUNNING
                local = self._local_disks(m.vm)
                move = self._migrate(
                    vmid,
                    m.d.name,
                    source=host,
                    target=target,
                    online=running,
                    local=local,
                    reason=reason,
                )
                self._emit(move, vmid)
            if over(self.sched, host, base, policy.rebalance):
                cpu, mem = self.sched.usage(host, base.overcommit)
                self.blocked.append(
                    Blocked(
                        "rebalance",
                        f"{host} stays above its thresholds (CPU {cpu:.0%}, memory {mem:.0%})",
                        fleet=fleet.name,
                    )
                )

    def _movable(self, d: DesiredVM, vm: ObservedVM) -> bool:
        """Whether rebalance may live-migrate this VM (never GPU, pinned, self or busy VMs)."""
        if d.vmid in self.busy:  # already powered, moved or drained by this plan
            return False
        return (
            vm.status in (VMStatus.RUNNING, VMStatus.STOPPED)
            and vm.config is not None
            and vm.lock is None
            and not paused(vm)
            and vm.vmid != self.o.self_vmid
            and d.host is None
            and d.gpus is None
            and not vm.gpu_claims()
            and not vm.raw_pci()
            and str(vm.vmid) not in self.tasks_by_id
        )

    # -- 6. prune ------------------------------------------------------------------------------

    def _prune(self, fleet: DesiredFleet) -> None:
        wanted = {d.vmid for d in fleet.vms}
        owned = [v for v in self.o.vms if not v.template and owner(v) == fleet.name]
        surplus = sorted((v for v in owned if v.vmid not in wanted), key=lambda v: v.vmid)
        if not surplus:
            return
        managed = len(
            {v.vmid for v in owned}
            | {i for i, m in self.matched.items() if m.d.fleet == fleet.name}
        )
        refusal = destroy_refusal(len(surplus), managed)
        if not self.o.unobserved.vmids_trustworthy:
            refusal = "not destroyed: the observation is incomplete"
        if refusal is not None:
            self.blocked.append(Blocked("destroy_limit", refusal, fleet=fleet.name))
            return
        for vm in surplus:
            code, why = self._destroy_refusal(fleet, vm)
            if code is None:
                others = tuple(a.id for a in self.actions)
                self.last.pop(vm.vmid, None)
                self._emit(
                    Destroy(
                        id=f"destroy:{vm.vmid}",
                        reason=f"owned by fleet {fleet.name}, no longer in its spec (prune)",
                        vmid=vm.vmid,
                        name=vm.name,
                        host=vm.host,
                        fleet=fleet.name,
                        running=vm.status is VMStatus.RUNNING,
                    ),
                    vm.vmid,
                    *others,
                )
                continue
            self.blocked.append(Blocked(code, why, vm.vmid, vm.name, fleet.name))

    def _destroy_refusal(self, fleet: DesiredFleet, vm: ObservedVM) -> tuple[str | None, str]:
        if any(isinstance(a, Destroy) for a in self.actions):
            return "destroy_deferred", "not destroyed: one destroy per cycle"
        if vm.status is VMStatus.UNKNOWN or vm.config is None:
            return "observation_incomplete", "not destroyed: not fully observed"
        if paused(vm):
            return "paused", "not destroyed: tagged pd-paused"
        if vm.vmid == self.o.self_vmid:
            return "self", "not destroyed: provisiond runs in it"
        if vm.lock is not None:
            return "locked", f"not destroyed: locked ({vm.lock})"
        if vm.status is VMStatus.RUNNING:
            refusal = self.budget.take(fleet.name, None)
            if refusal is not None:
                return "disruption_limit", f"not destroyed now: {refusal}"
        return None, ""

    # -- result --------------------------------------------------------------------------------

    def _plan(self) -> Plan:
        index = {a.id: i for i, a in enumerate(self.actions)}
        waiting_on = {a.id: len(a.after) for a in self.actions}
        children: dict[str, list[str]] = {}
        for a in self.actions:
            for dep in a.after:
                children.setdefault(dep, []).append(a.id)
        heap = [(a.phase, a.vmid, index[a.id]) for a in self.actions if not a.after]
        heapq.heapify(heap)
        ordered: list[Action] = []
        while heap:
            _, _, i = heapq.heappop(heap)
            a = self.actions[i]
            ordered.append(a)
            for child in children.get(a.id, ()):
                waiting_on[child] -= 1
                if waiting_on[child] == 0:
                    c = self.actions[index[child]]
                    heapq.heappush(heap, (c.phase, c.vmid, index[child]))
        return Plan(
            actions=tuple(ordered),
            blocked=tuple(self.blocked),
            conflicts=tuple(self.conflicts),
            waiting=tuple(self.waiting),
        )


def _as_cloned(cfg: VMConfig) -> VMConfig:
    """What a fresh clone of a template looks like: the same config with new (unknown) MACs."""
    return replace(cfg, nets={i: replace(n, mac=None) for i, n in cfg.nets.items()})
