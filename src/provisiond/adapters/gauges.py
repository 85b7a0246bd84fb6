"""The fleet gauges, derived from one observation and its plan — a pure function, no I/O.

``fleet_gauges(observed, plan)`` gives the values of ``provisiond_drift_objects``,
``provisiond_gpu_devices`` and ``provisiond_host_allocation_ratio``; ``Metrics.set_fleet``
publishes them. It lives with the metrics adapter (not in ``core``) because it exists only to
feed them, but it reads core types only and is tested with plain values.

Rules (docs/metrics.md repeats them for operators):
- drift: objects (VMIDs, or a fleet for fleet-wide refusals) per kind of planned correction
  (``clone``, ``configure``, …), plus ``blocked`` (a correction a guard or the cluster refuses)
  and ``conflict`` (a desired VM colliding with something not owned). Work already under way
  (``plan.waiting``) is not drift. Every kind is present, zeros included, so a sum is 0 when
  converged instead of empty;
- GPUs, per (host, mapping): ``claimed`` — held by the VMs on that host (every VM referencing a
  mapping holds a device, running or not; pending config counts, as in the scheduler);
  ``reserved`` — what the plan gives to VMs on their way there (a clone's or a config write's
  new ``hostpci`` mappings, a migration's or GPU move's target), not yet held; ``free`` — the
  rest, never below 0. Only (host, mapping) pairs with devices or claims appear;
- allocation: allocated vCPUs (``maxcpu``) and memory of every non-template VM on a host over
  the host's logical CPUs and memory, without overcommit (an over-allocated host reads > 1).
  Hosts whose capacity is unknown (offline, 0) are left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import get_args

from provisiond.core.actions import Action, Clone, Configure, GpuMove, Migrate
from provisiond.core.observed import HostPci, ObservedState, ObservedVM
from provisiond.core.plan import Plan
from provisiond.core.pveconfig import parse_hostpci

ACTION_KINDS: tuple[str, ...] = tuple(sorted(t.kind for t in get_args(Action)))
DRIFT_KINDS: tuple[str, ...] = (*ACTION_KINDS, "blocked", "conflict")
# Blocked codes that are a safety guard refusing a destructive or disruptive action: these
# feed provisiond_destructive_actions_blocked_total{reason}. Other codes (no_target, template,
# unknown_status…) say the cluster cannot take the work, which the drift gauge shows.
DESTRUCTIVE_GUARDS = frozenset(
    {
        "destroy_limit",
        "destroy_deferred",
        "disruption_limit",
        "empty_spec",
        "self",
        "large_disk_growth",  # a disk growth PVE cannot undo, held until confirmed
        "ha_rule_deferred",  # deleting our own HA rules, one per plan
    }
)


@dataclass(frozen=True, slots=True)
class FleetGauges:
    drift: dict[str, int] = field(default_factory=dict)
    gpus: dict[tuple[str, str, str], int] = field(default_factory=dict)  # host, mapping, state
    allocation: dict[tuple[str, str], float] = field(default_factory=dict)  # host, resource


def fleet_gauges(observed: ObservedState, plan: Plan) -> FleetGauges:
    return FleetGauges(
        drift=drift_by_kind(plan),
        gpus=gpu_devices(observed, plan),
        allocation=host_allocation(observed),
    )


def blocked_guards(plan: Plan) -> list[str]:
    """The destructive-guard codes of the plan's blocked items, one per item."""
    return [b.code for b in plan.blocked if b.code in DESTRUCTIVE_GUARDS]


def drift_by_kind(plan: Plan) -> dict[str, int]:
    objects: dict[str, set[object]] = {kind: set() for kind in DRIFT_KINDS}
    for action in plan.actions:
        objects[action.kind].add(action.vmid)
    for i, b in enumerate(plan.blocked):
        objects["blocked"].add(b.vmid if b.vmid is not None else (b.fleet, b.code, i))
    for c in plan.conflicts:
        objects["conflict"].add(c.vmid)
    return {kind: len(ids) for kind, ids in objects.items()}


def _vms(observed: ObservedState) -> dict[int, ObservedVM]:
    return {v.vmid: v for v in observed.vms if not v.template}


def _hostpci_after(vm: ObservedVM | None, action: Configure) -> Counter[str]:
    """Mappings the VM holds once ``action`` is written (its current hostpci, edited)."""
    pci: dict[int, HostPci] = dict(vm.config.hostpci) if vm and vm.config else {}
    for key in action.delete:
        if key.startswith("hostpci") and key[7:].isdigit():
            pci.pop(int(key[7:]), None)
    for key, value in action.values.items():
        if key.startswith("hostpci") and key[7:].isdigit():
            pci[int(key[7:])] = parse_hostpci(int(key[7:]), value)
    return Counter(p.mapping for p in pci.values() if p.mapping is not None)


def _reserved(observed: ObservedState, plan: Plan) -> Counter[tuple[str, str]]:
    vms = _vms(observed)
    reserved: Counter[tuple[str, str]] = Counter()
    for action in plan.actions:
        match action:
            case Configure():
                vm = vms.get(action.vmid)
                held = vm.gpu_claims() if vm is not None else {}
                for mapping, n in _hostpci_after(vm, action).items():
                    extra = n - held.get(mapping, 0)
                    if extra > 0:
                        reserved[(action.host, mapping)] += extra
            case Migrate() | GpuMove():
                vm = vms.get(action.vmid)
                if vm is not None:
                    for mapping, n in vm.gpu_claims().items():
                        reserved[(action.target, mapping)] += n
            case Clone():
                pass  # its GPUs arrive with the configure that follows it (counted there)
            case _:
                pass
    return reserved


def gpu_devices(observed: ObservedState, plan: Plan) -> dict[tuple[str, str, str], int]:
    total: Counter[tuple[str, str]] = Counter()
    for m in observed.mappings:
        for entry in m.entries:
            total[(entry.host, m.id)] += len(entry.paths)
    claimed: Counter[tuple[str, str]] = Counter()
    for vm in _vms(observed).values():
        for mapping, n in vm.gpu_claims().items():
            claimed[(vm.host, mapping)] += n
    reserved = _reserved(observed, plan)
    out: dict[tuple[str, str, str], int] = {}
    for host, mapping in sorted(set(total) | set(claimed)):
        key = (host, mapping)
        out[(host, mapping, "claimed")] = claimed[key]
        out[(host, mapping, "reserved")] = reserved[key]
        out[(host, mapping, "free")] = max(total[key] - claimed[key] - reserved[key], 0)
    return out


def host_allocation(observed: ObservedState) -> dict[tuple[str, str], float]:
    cores: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    for vm in _vms(observed).values():
        cores[vm.host] += vm.cores
        memory[vm.host] += vm.memory_mib
    out: dict[tuple[str, str], float] = {}
    for h in observed.hosts:
        if h.cpus > 0:
            out[(h.name, "cpu")] = cores[h.name] / h.cpus
        if h.memory_mib > 0:
            out[(h.name, "memory")] = memory[h.name] / h.memory_mib
    return out
