"""The simulated HA manager of PVE 9.x (CRM): HA rules, node affinity, and the CRS auto-rebalance.

Behaviour taken from pve-ha-manager (``PVE::HA::Manager``, ``Rules::NodeAffinity``,
``Rules::ResourceAffinity``), docs/simulator.md lists it:
- enabled rules only; a node-affinity rule's resources may run on its ``nodes`` (``strict``) or
  prefer them (non-strict: every other node at priority -1); the *preferred* nodes are the online
  ones of the highest priority;
- every round (``HA_ROUND_SECONDS``) a started HA resource whose node is not among its preferred
  nodes is migrated to the preferred node with the fewest HA resources (failback is on by
  default): a manual migration to a node outside a strict rule is followed by a migration back,
  logged ``migrate service 'vm:<id>' to node '<n>' (running)``;
- a resource on an offline node is recovered to a preferred online node; with none (strict) it
  stays in ``recovery``: ``recovering service 'vm:<id>' from fenced node '<n>' failed, no
  recovery node found`` (fencing delays are not simulated: recovery happens on the next round);
- a migrate request to a node where a negative-affinity partner runs (or is headed) is dropped:
  ``crm command 'migrate vm:<a> <n>' error - service 'vm:<b>' on node '<n>' in negative affinity
  with service 'vm:<a>'``; positive-affinity partners are migrated along;
- auto-rebalance (``crs`` ``ha=static|dynamic`` and ``ha-auto-rebalance``): no motion under way,
  the imbalance above ``threshold`` for ``hold-duration`` consecutive rounds, then the single
  migration that lowers it most, if it lowers it by at least ``margin`` (relative). Simplified:
  a node's load is the mean of its CPU and memory shares (static: configured cores/memory of its
  running HA resources; dynamic: of all its running VMs), the imbalance their coefficient of
  variation (the real scoring lives in proxmox-resource-scheduling); ``method`` is not modelled.

Node maintenance (PVE 8.x and 9.x; ``ha-manager crm-command node-maintenance enable <node>``,
``SimHandle.ha_node_maintenance`` or ``haMaintenance`` on a topology host): simplified so that
the CRM's request (``node_request``), the LRM's mode and the CRM's node state (``node_status``
``maintenance``) switch at once. A node in maintenance is not online for placement; every round
each started HA resource on it is migrated (online) to the preferred available node with the
fewest HA resources (``migrate service 'vm:<id>' to node '<n>' (running)``) and remembers the
node as its ``maintenance_node``; once the node leaves maintenance the resource is moved back
(``moving service 'vm:<id>' back to '<n>', node came back from maintenance.``). VMs that are not
HA-managed stay where they are: the HA stack knows nothing of them. On 8.4 (``rules=False``)
the rounds do only this.

Every log line goes to ``Cluster.ha_log`` (what ``journalctl -u pve-ha-crm`` would show).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from provisiond.sim.pve.handlers.migrate import migration_body
from provisiond.sim.pve.state import Cluster, VmState
from provisiond.sim.pve.tasks import TaskContext

HA_ROUND_SECONDS = 10.0
HA_USER = "root@pam"


def sid(vmid: int) -> str:
    return f"vm:{vmid}"


def parse_resources(value: str) -> list[int]:
    """``vm:101,vm:102`` -> VMIDs (other resource types are not simulated)."""
    out = []
    for part in value.replace(";", ",").split(","):
        kind, _, name = part.strip().partition(":")
        if kind == "vm" and name.isdigit():
            out.append(int(name))
    return out


def parse_nodes(value: str) -> dict[str, int]:
    """``a:2,b`` -> {node: priority} (no priority = 0, ``PVE::HA::Tools::parse_node_priority``)."""
    out: dict[str, int] = {}
    for part in value.replace(";", ",").split(","):
        node, _, pri = part.strip().partition(":")
        if node:
            out[node] = int(pri or 0)
    return out


@dataclass
class Compiled:
    """The enabled rules, per VMID (``PVE::HA::Rules::compile``)."""

    nodes: dict[int, dict[str, int]] = field(default_factory=dict)  # priorities
    strict: set[int] = field(default_factory=set)
    together: dict[int, set[int]] = field(default_factory=dict)
    apart: dict[int, set[int]] = field(default_factory=dict)


def compile_rules(cluster: Cluster) -> Compiled:
    out = Compiled()
    for rule in cluster.ha_rules.values():
        if int(rule.get("disable", 0) or 0):
            continue
        vmids = parse_resources(str(rule["resources"]))
        if rule["type"] == "node-affinity":
            prios = parse_nodes(str(rule["nodes"]))
            for v in vmids:
                out.nodes[v] = prios
                if int(rule.get("strict", 0) or 0):
                    out.strict.add(v)
            continue
        table = out.together if rule.get("affinity") == "positive" else out.apart
        for v in vmids:
            table.setdefault(v, set()).update(x for x in vmids if x != v)
    return out


def preferred(rules: Compiled, vmid: int, online: Iterable[str]) -> set[str]:
    """``get_node_affinity``'s preferred nodes: the online ones of the highest priority."""
    up = set(online)
    prios = rules.nodes.get(vmid)
    if prios is None:
        return up
    if vmid not in rules.strict:
        prios = {**dict.fromkeys(up, -1), **prios}
    ranked = {n: p for n, p in prios.items() if n in up}
    if not ranked:
        return set()
    top = max(ranked.values())
    return {n for n, p in ranked.items() if p == top}


class HaManager:
    """One CRM per simulated cluster; ``run`` does a round every ``HA_ROUND_SECONDS``."""

    def __init__(self, cluster: Cluster, *, rules: bool = True) -> None:
        self.cluster = cluster
        self.rules = rules  # PVE 9.x: rules, failback, the CRS auto-rebalance
        self.sustained_rounds = 0
        if rules:
            cluster.ha_admit = self.admit_request

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HA_ROUND_SECONDS * self.cluster.time_scale)
            self.round()

    def log(self, line: str) -> None:
        self.cluster.ha_log.append(line)

    def _ha_vms(self) -> list[VmState]:
        return sorted(
            (v for v in self.cluster.vms.values() if v.hastate is not None),
            key=lambda v: v.vmid,
        )

    def _online(self) -> list[str]:
        """``node_is_online``: a node in maintenance is not (nothing is placed there)."""
        return sorted(
            n for n, node in self.cluster.nodes.items() if node.online and not node.ha_maintenance
        )

    def _in_motion(self) -> bool:
        return any(v.hastate in ("migrate", "relocate") for v in self._ha_vms())

    def _count(self, node: str) -> int:
        return sum(1 for v in self._ha_vms() if v.node == node)

    def node_maintenance(self, node: str, *, enable: bool) -> None:
        """The ``enable-node-maintenance`` / ``disable-node-maintenance`` crm commands."""
        state = self.cluster.nodes[node]
        if enable and not state.online:
            self.log(f"crm command error - node not online: enable-node-maintenance {node}")
            return
        if enable and state.ha_maintenance:
            self.log(f"ignoring crm command - node {node} is already in maintenance state")
            return
        if not enable and not state.ha_maintenance:
            self.log(
                f"clearing maintenance of node {node} requested, but it's in state "
                f"{'online' if state.online else 'unknown'}"
            )
        self.log(f"got crm command: {'enable' if enable else 'disable'}-node-maintenance {node}")
        state.ha_maintenance = enable

    def round(self) -> None:
        rules = compile_rules(self.cluster)
        online = self._online()
        self._maintenance(rules, online)
        if not self.rules:
            return
        for vm in self._ha_vms():
            if vm.hastate not in ("started", "recovery"):
                continue
            pri = preferred(rules, vm.vmid, online)
            node = self.cluster.nodes.get(vm.node)
            if node is not None and node.ha_maintenance:
                continue  # moved by ``_maintenance`` (or nowhere to go)
            if vm.node not in online:
                self._recover(vm, pri)
            elif vm.node not in pri and not self._in_motion():
                target = min(pri, key=lambda n: (self._count(n), n), default=None)
                if target is not None:
                    self.log(f"migrate service '{sid(vm.vmid)}' to node '{target}' (running)")
                    self.migrate(vm, target)
        self._load_balance(rules, online)

    def _maintenance(self, rules: Compiled, online: list[str]) -> None:
        """Started HA resources leave a node in maintenance, and come back when it leaves."""
        for vm in self._ha_vms():
            if vm.hastate != "started" or not vm.running:
                continue
            node = self.cluster.nodes.get(vm.node)
            fallback = vm.maintenance_node
            if node is not None and node.ha_maintenance:
                pri = preferred(rules, vm.vmid, online)
                target = min(pri, key=lambda n: (self._count(n), n), default=None)
                if target is not None:
                    vm.maintenance_node = vm.node
                    self.log(f"migrate service '{sid(vm.vmid)}' to node '{target}' (running)")
                    self.migrate(vm, target)
            elif fallback is not None and fallback != vm.node and fallback in online:
                self.log(
                    f"moving service '{sid(vm.vmid)}' back to '{fallback}', node came back "
                    "from maintenance."
                )
                vm.maintenance_node = None
                self.log(f"migrate service '{sid(vm.vmid)}' to node '{fallback}' (running)")
                self.migrate(vm, fallback)

    def _recover(self, vm: VmState, pri: set[str]) -> None:
        fenced = vm.node
        target = min(pri, key=lambda n: (self._count(n), n), default=None)
        if target is None:
            vm.hastate = "recovery"
            self.log(
                f"recovering service '{sid(vm.vmid)}' from fenced node '{fenced}' failed, "
                "no recovery node found"
            )
            return
        self.log(f"recover service '{sid(vm.vmid)}' from fenced node '{fenced}' to node '{target}'")
        vm.node = target
        vm.hastate = "started"
        self.cluster.migrations.append((vm.vmid, fenced, target, "recovery"))

    def migrate(self, vm: VmState, target: str) -> None:
        """The LRM's migration: a ``qmigrate`` task by root@pam; ``hastate`` ``migrate`` until
        it ends (``started`` again either way)."""
        body = migration_body(
            self.cluster,
            vm,
            target,
            online=vm.running,
            with_local_disks=True,
            storage_map=None,
            force=False,
        )
        vm.hastate = "migrate"

        async def ha_body(ctx: TaskContext) -> None:
            try:
                await body(ctx)
            finally:
                vm.hastate = "started"

        self.cluster.tasks.start(vm.node, "qmigrate", str(vm.vmid), HA_USER, ha_body)

    def admit_request(self, vm: VmState, target: str) -> bool:
        """A ``migrate`` crm command (``queue_resource_motion``): dropped when a negative-affinity
        partner is on or headed to ``target``; positive partners are migrated along."""
        rules = compile_rules(self.cluster)
        cmd = f"migrate {sid(vm.vmid)} {target}"
        for other in sorted(rules.apart.get(vm.vmid, ())):
            o = self.cluster.vms.get(other)
            if o is not None and o.hastate is not None and o.node == target:
                self.log(
                    f"crm command '{cmd}' error - service '{sid(other)}' on node '{target}' in "
                    f"negative affinity with service '{sid(vm.vmid)}'"
                )
                return False
        self.log(f"got crm command: {cmd}")
        for other in sorted(rules.together.get(vm.vmid, ())):
            o = self.cluster.vms.get(other)
            if o is not None and o.hastate == "started" and o.node != target:
                self.log(
                    f"crm command '{cmd}' - migrate service '{sid(other)}' to node '{target}' "
                    f"(service '{sid(other)}' in positive affinity with service '{sid(vm.vmid)}')"
                )
                self.migrate(o, target)
        return True

    # -- auto-rebalance ------------------------------------------------------------------------
    def _loads(self, moved: tuple[int, str] | None, online: list[str]) -> list[float]:
        dynamic = self.cluster.crs.ha == "dynamic"
        cpu = dict.fromkeys(online, 0.0)
        mem = dict.fromkeys(online, 0.0)
        for v in self.cluster.vms.values():
            if not v.running or v.is_template or (v.hastate is None and not dynamic):
                continue
            node = moved[1] if moved is not None and moved[0] == v.vmid else v.node
            if node in cpu:
                cpu[node] += v.cpus()
                mem[node] += v.memory_bytes()
        nodes = self.cluster.nodes
        return [(cpu[n] / nodes[n].cpus + mem[n] / max(nodes[n].memory, 1)) / 2 for n in online]

    def imbalance(self, moved: tuple[int, str] | None = None) -> float:
        loads = self._loads(moved, self._online())
        mean = statistics.fmean(loads) if loads else 0.0
        return statistics.pstdev(loads) / mean if mean > 0 else 0.0

    def _load_balance(self, rules: Compiled, online: list[str]) -> None:
        crs = self.cluster.crs
        if not crs.ha_auto_rebalance or crs.ha not in ("static", "dynamic"):
            return
        if self._in_motion():
            return
        now = self.imbalance()
        if now <= crs.ha_auto_rebalance_threshold:
            self.sustained_rounds = 0
            return
        self.sustained_rounds += 1
        if self.sustained_rounds < crs.ha_auto_rebalance_hold_duration:
            return
        self.sustained_rounds = 0
        best: tuple[float, int, str] | None = None
        for vm in self._ha_vms():
            if vm.hastate != "started" or not vm.running or rules.together.get(vm.vmid):
                continue
            blocked = {
                self.cluster.vms[o].node
                for o in rules.apart.get(vm.vmid, ())
                if o in self.cluster.vms
            }
            for node in sorted(preferred(rules, vm.vmid, online) - blocked - {vm.node}):
                after = self.imbalance((vm.vmid, node))
                if best is None or (after, vm.vmid, node) < best:
                    best = (after, vm.vmid, node)
        if best is None or (now - best[0]) / now < crs.ha_auto_rebalance_margin:
            return
        after, vmid, node = best
        self.log(
            f"auto rebalance - migrate {sid(vmid)} to {node} "
            f"(expected change for imbalance from {now:.2f} to {after:.2f})"
        )
        self.migrate(self.cluster.vms[vmid], node)
