"""Destroy: stop (if running) and remove a VM of ours — the one irreversible action.

Guards, all on a fresh read of the VM on the planned host right before the calls (its status,
and its config when only the description marker proves the owner): the VM's owner must be the
action's fleet, unpaused and unlocked (``check_ours``), and its host must answer (an unknown
status never leads to a destroy). Not on the planned host: gone (the cluster's VM list is read
to tell) → *adopted*, moved → replanned. A running VM is stopped first and re-checked after the
stop, so a VM that changed hands meanwhile is left alone. Done when the host no longer has it.
"""

from __future__ import annotations

from provisiond.core.actions import Destroy
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import VMStatus
from provisiond.core.ownership import owner
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal


async def destroy(a: Destroy, ctx: ActionContext) -> None:
    vm = await ctx.status(a.vmid, a.host)
    if vm is None:
        elsewhere = await ctx.read(a.vmid)
        if elsewhere is None:
            raise AdoptedSignal(f"VM {a.vmid} already gone")
        raise PermanentError(f"VM {a.vmid} moved to {elsewhere.host} since the plan; replanning")
    if vm.status is VMStatus.UNKNOWN:
        raise TransientError(f"not destroying VM {a.vmid}: host {vm.host} does not answer")
    vm = await ctx.owned(vm)
    fleet = owner(vm)
    if fleet != a.fleet:
        raise PermanentError(
            f"refusing to destroy VM {a.vmid}: owner is {fleet or 'not provisiond'}, "
            f"not fleet {a.fleet}"
        )
    ctx.fleets.setdefault(a.vmid, a.fleet)
    ctx.check_ours(vm, "destroy")
    if vm.status is VMStatus.RUNNING:
        ref = await ctx.call(f"stop {a.vmid}", lambda: ctx.writer.stop(host=a.host, vmid=a.vmid))
        await ctx.tasks.wait(ref, f"stop {a.vmid}")
        again = await ctx.status(a.vmid, a.host)
        if again is None:
            raise AdoptedSignal(f"VM {a.vmid} already gone")
        ctx.check_ours(await ctx.owned(again), "destroy")
    ref = await ctx.call(f"destroy {a.vmid}", lambda: ctx.writer.destroy(host=a.host, vmid=a.vmid))
    await ctx.tasks.wait(ref, f"destroy {a.vmid}")
    if await ctx.status(a.vmid, a.host) is not None:
        raise TransientError(f"destroy {a.vmid}: task OK but the VM is still listed")
