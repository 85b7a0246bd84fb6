"""A missing VM: place it, clone its template, configure, grow, start.

Nothing is cloned over an incomplete observation (a VMID that could not be listed may exist;
without the running tasks a clone of it may be under way: it waits), onto a host whose inputs
were not observed (it waits when such a host might fit), from a template that is missing,
ambiguous or not observed, or while a clone of the same template runs (it waits for that one).
The clone lands on the target host directly when the template is there or all its disks are on
storage shared with the target; otherwise it is cloned on the template's host and migrated
offline, with its disks. The config drift is computed against what a fresh clone of the template
looks like (``as_cloned``), so the replan after the clone finds no drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from provisiond.core.actions import Clone
from provisiond.core.desired import CloneMode, DesiredVM, PowerState, ownership_marker
from provisiond.core.drift import config_drift
from provisiond.core.observed import ObservedVM, VMConfig, VMStatus
from provisiond.core.planning.configure import configure, grow
from provisiond.core.planning.harules import conflicted
from provisiond.core.planning.matching import template
from provisiond.core.planning.migration import migrate
from provisiond.core.planning.placement import constraints
from provisiond.core.planning.power import start
from provisiond.core.planning.state import PlanState
from provisiond.core.scheduler import Demand, Request


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A missing VM that may be cloned: its template and what it needs from a host."""

    d: DesiredVM
    tmpl: ObservedVM
    request: Request


def create(s: PlanState, missing: Sequence[DesiredVM]) -> None:
    """Clone every missing VM that may be: placed jointly, the most constrained first."""
    wanted = [w for w in (_wanted(s, d) for d in missing) if w is not None]
    targets = s.sched.place_all([w.request for w in wanted])
    for w in wanted:
        target = targets.get(w.d.vmid)
        if target is None:
            _unplaced(s, w)
        else:
            _clone(s, w, target)


def _wanted(s: PlanState, d: DesiredVM) -> _Wanted | None:
    """``d`` with what it needs, or None when it may not be cloned now (reported)."""
    if not s.observed.unobserved.vmids_trustworthy:
        failed = ", ".join(s.observed.unobserved.lists)
        s.block("observation_incomplete", f"not cloned: could not read {failed}", d)
        return None
    if s.observed.unobserved.tasks:  # a clone of it may be under way
        s.unseen("running tasks", d)
        return None
    if conflicted(s, d):  # the spec contradicts a strict PVE HA rule for its VMID
        return None
    tmpl, why = template(s, d)
    if tmpl is None:
        s.block("template", f"not cloned: {why}", d)
        return None
    if tmpl.status is VMStatus.UNKNOWN or tmpl.config is None:
        s.block("template", f"not cloned: template {tmpl.name} is not observed", d)
        return None
    if tmpl.vmid in s.clones:
        why = f"a clone of template {tmpl.name} is running; waiting for VMID {d.vmid}"
        s.wait(s.since(why, s.clones[tmpl.vmid]), d)
        return None
    if tmpl.host in s.observed.unobserved.storage:  # can a target reach its disks?
        s.unseen(f"storage of host {tmpl.host}", d, "not cloned yet")
        return None
    full = d.clone_mode is CloneMode.FULL
    storages = {d.storage} if full and d.storage else set(_storages(tmpl))
    storages |= {x.storage for x in d.disks if x.storage}
    load = Demand(
        d.cores,
        d.memory_mib,
        {d.gpus.mapping: d.gpus.count} if d.gpus else {},
        (d.fleet, d.pool),
        d.spread,
        tuple(sorted(storages)),
    )
    return _Wanted(d, tmpl, Request(d.vmid, load, constraints(s, d)))


def _storages(tmpl: ObservedVM) -> list[str]:
    return sorted({x.storage for x in tmpl.config.disks.values()}) if tmpl.config else []


def _unplaced(s: PlanState, w: _Wanted) -> None:
    d, load, c = w.d, w.request.demand, w.request.constraints
    _, refusals = s.sched.place(load, c)
    unseen = s.sched.unseen_among(load, c)
    if unseen:
        s.unseen(", ".join(unseen), d, "not cloned yet")
    else:
        s.block("no_target", f"not cloned: no host fits ({refusals})", d)


def _clone(s: PlanState, w: _Wanted, target: str) -> None:
    d, tmpl, load = w.d, w.tmpl, w.request.demand
    tcfg = tmpl.config
    assert tcfg is not None  # checked by _wanted
    full = d.clone_mode is CloneMode.FULL
    tstorages = _storages(tmpl)
    thost = s.sched.hosts.get(tmpl.host)
    shared = thost is not None and all(
        (st := thost.storage(x)) is not None and st.shared for x in tstorages
    )
    if full and d.storage:
        st = s.sched.hosts[target].storage(d.storage)
        shared = shared and st is not None and st.shared
    direct = target == tmpl.host or shared
    if not direct and full and d.storage and (thost is None or not thost.storage(d.storage)):
        s.sched.remove(target, load)
        why = f"{target} cannot reach {tmpl.name}'s storage, {tmpl.host} has no {d.storage}"
        s.block("no_target", f"not cloned: {why}", d)
        return
    lands = target if direct else tmpl.host
    s.accounted[d.vmid] = (target, load)
    s.emit(
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
        move = migrate(
            d.vmid, d.name, source=tmpl.host, target=target, online=False, local=True, reason=why
        )
        s.emit(move, d.vmid)
    fresh = as_cloned(tcfg)
    default_storage = d.storage if full and d.storage else next(iter(tstorages), None)
    drift = config_drift(d, fresh, default_storage=default_storage)
    if drift:
        configure(s, d, target, drift, "new clone: set " + ", ".join(sorted(drift.keys)))
    grow(s, d, fresh, target, new_clone=True)
    if d.power is PowerState.RUNNING:
        start(s, d, target, "new clone: start")


def as_cloned(cfg: VMConfig) -> VMConfig:
    """What a fresh clone of a template looks like: the same config with new (unknown) MACs."""
    return replace(cfg, nets={i: replace(n, mac=None) for i, n in cfg.nets.items()})
