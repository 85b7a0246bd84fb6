"""Configure and grow: the in-place work on a VM's config (compatible with a move).

``configure`` sets the spec-owned keys that drift (``core.drift``) and deletes the ones the
spec dropped; ``grow_disks`` grows every disk smaller than the spec says (disks only grow).
Both run on the host the VM stands on once the actions before them in the plan are done.

Growing is irreversible (PVE cannot shrink a disk), so a growth of an existing disk past its
storage's free space, or by more than ``policy.maxDiskGrowth`` times at once (a unit typo:
``100TiB`` for ``100GiB``), is blocked (``large_disk_growth``) unless the VM says
``allowLargeGrowth: true`` (``apply --allow-large-growth`` sets it for one run). A new clone's
growth from its template's size is the intended creation size and is not held back.
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


def _too_large(s: PlanState, d: DesiredVM, cfg: VMConfig, host: str, slot: str) -> str | None:
    """Why growing ``slot`` of an existing VM needs a confirmation, or None."""
    size = next(disk.size_bytes for disk in d.disks if disk.slot == slot)
    current = cfg.disks[slot]
    want, have = format_size(size), format_size(current.size_bytes)
    factor = s.fleet(d).policy.max_disk_growth
    if size > factor * current.size_bytes:
        return f"{slot}: {have} → {want} grows it more than {factor:g} times at once"
    on = next((h.storage(current.storage) for h in s.observed.hosts if h.name == host), None)
    free = on.avail_bytes if on is not None else None
    if free is not None and size - current.size_bytes > free:
        return (
            f"{slot}: {have} → {want} needs {format_size(size - current.size_bytes)}, "
            f"storage {current.storage} has {format_size(free)} free"
        )
    return None


def grow(s: PlanState, d: DesiredVM, cfg: VMConfig, host: str, *, new_clone: bool) -> None:
    for slot, size, current in grow_disks(d, cfg):
        want, have = format_size(size), format_size(current)
        why = None if new_clone or d.allow_large_growth else _too_large(s, d, cfg, host, slot)
        if why is not None:
            s.block(
                "large_disk_growth",
                f"{why} (irreversible: confirm with allowLargeGrowth: true on the VM or pool, "
                "or apply --allow-large-growth)",
                d,
            )
            continue
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
