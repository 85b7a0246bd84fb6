"""PVE's pending section: how a config write reaches a VM's config (qemu-server
``update_vm_api``'s worker, guest-common ``AbstractConfig`` — SEMANTICS Addendum 2).

A write goes through the pending section first, in PVE's order:

1. ``revert``: a key with a current value is set back to it; a key that is only pending is
   deleted.
2. ``delete``: the key's pending value is dropped and the key added to the pending deletes (a
   key set nowhere is skipped, as PVE's ``cannot delete … not set`` warning does).
3. every key *set* becomes a pending value (unchanged if it equals the pending one) and is
   removed from the pending deletes (``remove_from_pending_delete``).
4. ``cleanup_pending``: a pending value equal to the current one and a pending delete of a key
   the config does not hold are dropped.
5. a stopped VM applies everything at once (``vmconfig_apply_pending``); a running VM applies
   what can be hot-plugged (``vmconfig_hotplug_pending``: the fast-plug options and the default
   hotplug set network, disk, usb) and keeps the rest pending until its next start.

So a write that restores the current value leaves nothing pending, and setting a key cancels its
pending delete; ``GET …/pending`` never shows a phantom change.
"""

from __future__ import annotations

from collections.abc import Callable

from provisiond.sim.pve.state import FAST_PLUG, HOTPLUG_PREFIXES, Value, VmState


def hotpluggable(key: str) -> bool:
    """Whether a running VM takes a change of ``key`` at once."""
    return key in FAST_PLUG or key.startswith(HOTPLUG_PREFIXES)


def cleanup_pending(vm: VmState) -> None:
    """guest-common ``cleanup_pending``."""
    for key, value in list(vm.pending.items()):
        if key in vm.config and str(vm.config[key]) == str(value):
            del vm.pending[key]
    vm.pending_delete &= set(vm.config)


def update(
    vm: VmState,
    changes: dict[str, Value],
    delete: list[str],
    revert: list[str],
    *,
    allocate: Callable[[str, Value], Value],
) -> None:
    """Apply one config write; ``allocate`` turns a new-volume value into its volume."""
    changes = dict(changes)
    delete = list(delete)
    for key in revert:
        if key in vm.config:
            changes[key] = vm.config[key]
        elif key in vm.pending:
            delete.append(key)
    for key in delete:
        if key not in vm.config and key not in vm.pending:
            continue
        vm.pending.pop(key, None)
        vm.pending_delete.add(key)
    for key, given in changes.items():
        if key in vm.pending and str(vm.pending[key]) == str(given):
            continue
        vm.pending[key] = allocate(key, given)
        vm.pending_delete.discard(key)
    cleanup_pending(vm)
    if not vm.running:
        vm.apply_pending()
        return
    for key in sorted(vm.pending_delete):
        if hotpluggable(key):
            vm.config.pop(key, None)
            vm.pending_delete.discard(key)
    for key in sorted(vm.pending):
        if hotpluggable(key):
            vm.config[key] = vm.pending.pop(key)
