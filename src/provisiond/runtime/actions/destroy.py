"""Destroy: stop (if running) and remove a VM of ours — the one irreversible action.

Guards, all on a fresh read right before the calls: the VM's owner must be the action's fleet,
it must still be on the planned host, unpaused and unlocked (``check_ours``), and its host must
answer (an unknown status never leads to a destroy). Already gone → *adopted*. A running VM is
stopped first and re-checked after the stop, so a VM that changed hands meanwhile is left alone.
"""

from __future__ import annotations

from provisiond.core.actions import Destroy
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import VMStatus
from provisiond.core.ownership import owner
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal


async def destroy(a: Destroy, ctx: ActionContext) -> None:
    vm = await ctx.read(a.vmid)
    if vm is None:
        raise AdoptedSignal(f"VM {a.vmid} already gone")
    if vm.status is VMStatus.UNKNOWN:
        raise TransientError(f"not destroying VM {a.vmid}: host {vm.host} does not answer")
    fleet = owner(vm)
    if fleet != a.fleet:
        raise PermanentError(
            f"refusing to destroy VM {a.vmid}: owner is {fleet or 'not provisiond'}, "
            f"not fleet {a.fleet}"
        )
    ctx.fleets.setdefault(a.vmid, a.fleet)
    ctx.check_ours(vm, "destroy")
    if vm.host != a.host:
        raise PermanentError(f"VM {a.vmid} moved to {vm.host} since the plan; replanning")
    if vm.status is VMStatus.RUNNING:
        ref = await ctx.call(f"stop {a.vmid}", lambda: ctx.writer.stop(host=vm.host, vmid=a.vmid))
        await ctx.tasks.wait(ref, f"stop {a.vmid}")
        again = await ctx.read(a.vmid)
        if again is None:
            raise AdoptedSignal(f"VM {a.vmid} already gone")
        ctx.check_ours(again, "destroy")
    ref = await ctx.call(f"destroy {a.vmid}", lambda: ctx.writer.destroy(host=vm.host, vmid=a.vmid))
    await ctx.tasks.wait(ref, f"destroy {a.vmid}")
    if await ctx.read(a.vmid) is not None:
        raise TransientError(f"destroy {a.vmid}: task OK but the VM is still listed")
