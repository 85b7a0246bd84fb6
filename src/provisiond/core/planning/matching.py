"""Matching: how each desired VM relates to what holds its VMID.

A VM is *matched* (``state.matched``) when the VM at its VMID is owned by its fleet, or unowned
with the same name while the fleet adopts. Anything else at the VMID is a conflict, a clone
placeholder (waiting while its clone task runs, blocked as stuck otherwise) or a template; a
free VMID means the VM is missing. A name used by another VMID is a conflict and keeps a
missing VM from being cloned.

Invariant: an unowned VM is matched only through adoption, so nothing else is ever acted on.
"""

from __future__ import annotations

from provisiond.core.desired import DesiredVM
from provisiond.core.observed import ObservedVM
from provisiond.core.ownership import owner
from provisiond.core.plan import Conflict
from provisiond.core.planning.state import Match, PlanState


def match(s: PlanState, d: DesiredVM) -> bool:
    """Record how ``d`` relates to what is observed; True when its VMID is free."""
    fleet = s.fleet(d)
    vm = s.by_vmid.get(d.vmid)
    twins = [v.vmid for v in s.by_name.get(d.name, []) if v.vmid != d.vmid]
    if twins:
        s.conflicts.append(
            Conflict(f"name {d.name} is used by VMID {twins[0]}", d.vmid, d.name, d.fleet)
        )
    if vm is None:
        return not twins
    if vm.template:
        s.conflicts.append(
            Conflict(f"VMID {d.vmid} is a template ({vm.name})", d.vmid, d.name, d.fleet)
        )
        return False
    if vm.lock == "clone":
        tmpl, _ = template(s, d)
        key = tmpl.vmid if tmpl else None
        if key not in s.clones:
            s.block(
                "stuck_clone",
                f"VMID {d.vmid} is a clone placeholder (lock: clone) and no clone task runs:"
                " stuck; provisiond never unlocks",
                d,
            )
        else:
            s.wait(s.since("clone running", s.clones[key]), d)
        return False
    own = owner(vm)
    if own == d.fleet or (own is None and fleet.policy.adopt and vm.name == d.name):
        s.matched[d.vmid] = Match(d, vm)
        return False
    if own is not None:
        why = f"VMID {d.vmid} belongs to fleet {own}"
    elif fleet.policy.adopt:
        why = f"VMID {d.vmid} holds {vm.name!r}, not {d.name!r}: not adopted"
    else:
        why = f"VMID {d.vmid} holds {vm.name!r}, not owned by provisiond (adopt is off)"
    s.conflicts.append(Conflict(why, d.vmid, d.name, d.fleet))
    return False


def template(s: PlanState, d: DesiredVM) -> tuple[ObservedVM | None, str]:
    """The template ``d`` clones from, or None and why not (missing, not a template, ambiguous)."""
    ref = d.template
    if ref.vmid is not None:
        t = s.by_vmid.get(ref.vmid)
        if t is None or not t.template:
            return None, f"template VMID {ref.vmid} not found (or not a template)"
        return t, ""
    cands = [v for v in s.by_name.get(ref.name or "", []) if v.template]
    if not cands:
        return None, f"no template named {ref.name!r}"
    if len(cands) > 1:
        ids = ", ".join(str(v.vmid) for v in sorted(cands, key=lambda v: v.vmid))
        return None, f"template name {ref.name!r} is ambiguous (VMIDs {ids})"
    return cands[0], ""
