"""Configure and resize: changes to an existing VM's config and disks.

A config write is synchronous in Proxmox (no task); only the tags are verified by a fresh read,
because the ownership tags are what later guards rely on. The rest of the config is re-checked by
the next cycle, which re-observes everything (level-triggered). A disk grow is a task, waited
for. Both are idempotent: writing the same values or growing to the same size again is harmless.
"""

from __future__ import annotations

from provisiond.core.actions import Configure, GrowDisk
from provisiond.core.errors import TransientError
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal


async def configure(a: Configure, ctx: ActionContext) -> None:
    if not a.values and not a.delete:
        raise AdoptedSignal("nothing to change")
    await ctx.call(
        f"configure {a.vmid}",
        lambda: ctx.writer.configure(host=a.host, vmid=a.vmid, values=a.values, delete=a.delete),
    )
    if "tags" in a.values:
        vm = await ctx.read(a.vmid)
        want = tuple(sorted({t.strip().lower() for t in a.values["tags"].split(";") if t}))
        if vm is None or tuple(sorted(vm.tags)) != want:
            got = vm.tags if vm is not None else "VM gone"
            raise TransientError(f"configure {a.vmid}: tags not applied (want {want}, got {got})")


async def grow(a: GrowDisk, ctx: ActionContext) -> None:
    ref = await ctx.call(
        f"resize {a.vmid}",
        lambda: ctx.writer.resize(host=a.host, vmid=a.vmid, disk=a.disk, size_bytes=a.size_bytes),
    )
    await ctx.tasks.wait(ref, f"resize {a.vmid} {a.disk}")
