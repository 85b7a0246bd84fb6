"""Who owns a Proxmox VM (DESIGN §5).

A VM belongs to fleet ``f`` when its tags hold both ``provisiond`` and ``pd-f``, or its
description holds the clone's marker ``provisiond:f/<vm>`` (a clone cannot carry tags; the marker
closes the gap until configure writes them). ``pd-paused`` is an opt-out, not a fleet.

Invariant: ownership is read from the VM alone — never inferred from its VMID or name.
"""

from __future__ import annotations

import re

from provisiond.core.desired import OWNER_TAG, PAUSED_TAG
from provisiond.core.observed import ObservedVM

_MARKER = re.compile(r"provisiond:([a-z0-9_][a-z0-9_.+-]*)/(\S+)")


def owner(vm: ObservedVM) -> str | None:
    """The fleet that owns ``vm``, or ``None``."""
    tags = set(vm.tags)
    if OWNER_TAG in tags:
        fleets = sorted(t[3:] for t in tags if t.startswith("pd-") and t != PAUSED_TAG)
        if fleets:
            return fleets[0]
    m = _MARKER.search(vm.description)
    return m.group(1) if m else None


def paused(vm: ObservedVM) -> bool:
    return PAUSED_TAG in vm.tags
