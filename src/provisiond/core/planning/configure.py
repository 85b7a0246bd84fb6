"""Configure and grow: the in-place work on a VM's config (compatible with a move).

``configure`` sets the spec-owned keys that drift (``core.drift``) and deletes the ones the
spec dropped; ``grow_disks`` grows every disk smaller than the spec says (disks only grow).
Both run on the host the VM stands on once the actions before them in the plan are done.
"""

from __future__ import annotations

from provisiond.core.actions import Configure, GrowDisk
from provisiond.core.desired import DesiredVM
from provisiond.core.drift import Drift, grow_disks
from provisiond.core.observed import VMConfig
from provisiond.core.planning.state import PlanState
from provisiond.core.units import format_size


def configure(s: PlanState, d: DesiredVM, host: str, drift: Drift, reason: str) -> None:
    s.emit(
        Configure(
            id=f"configure:{d.vmid}",
            reason=reason,
            vmid=d.vmid,
            name=d.name,
            host=host,
            values=drift.values,
            delete=drift.delete,
        ),
        d.vmid,
    )


def grow(s: PlanState, d: DesiredVM, cfg: VMConfig, host: str, *, new_clone: bool) -> None:
    for slot, size, current in grow_disks(d, cfg):
        want, have = format_size(size), format_size(current)
        s.emit(
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
