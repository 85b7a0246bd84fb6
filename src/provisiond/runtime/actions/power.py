"""Power: start, shutdown (optionally forced) and reboot of an existing VM.

Each re-reads the VM on the planned host right before the call (``GET …/status/current``: one
request; a VM no longer there is replanned). Adoption: a VM already in the wanted state is
*adopted* without a call. Success is the effect: a task that ended ``OK`` proves it for a VM
not managed by HA; an HA-managed VM gets there only after the HA manager acts, so its status is
read after the task (a mismatch is transient). A failed task whose effect is there anyway — a
retried POST whose first answer was lost, so the second task found the VM already
started/stopped — is success, not a failure to back off from. Start re-checks that the VM is
not another fleet's, paused or locked; shutdown and reboot are disruptive: the VM must be ours.
"""

from __future__ import annotations

import structlog

from provisiond.core.actions import Reboot
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ports import TaskRef
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal, ReplanSignal

log = structlog.get_logger("provisiond.executor")


async def _here(vmid: int, host: str, what: str, ctx: ActionContext) -> ObservedVM:
    """The VM read now on ``host``; gone from there → replanned; its host silent → transient."""
    vm = await ctx.status(vmid, host)
    if vm is None:
        raise ReplanSignal(f"cannot {what} VM {vmid}: not on {host} (any more); replanning")
    if vm.status is VMStatus.UNKNOWN:
        raise TransientError(f"cannot {what} VM {vmid}: its host {host} does not answer")
    return vm


async def start(vmid: int, host: str, ctx: ActionContext) -> None:
    vm = await _here(vmid, host, "start", ctx)
    if vm.status is VMStatus.RUNNING:
        raise AdoptedSignal(f"VM {vmid} already running")
    ctx.check_not_foreign(await ctx.owned(vm), "start")
    ref = await ctx.call(f"start {vmid}", lambda: ctx.writer.start(host=host, vmid=vmid))
    await _wait_for_effect(ref, vm, VMStatus.RUNNING, "start", ctx)


async def shutdown(vmid: int, host: str, force_stop: bool, ctx: ActionContext) -> None:
    vm = await _here(vmid, host, "shut down", ctx)
    if vm.status is VMStatus.STOPPED:
        raise AdoptedSignal(f"VM {vmid} already stopped")
    ctx.check_ours(await ctx.owned(vm), "shut down")
    ref = await ctx.call(
        f"shutdown {vmid}",
        lambda: ctx.writer.shutdown(
            host=host, vmid=vmid, shutdown_timeout=60, force_stop=force_stop
        ),
    )
    await _wait_for_effect(ref, vm, VMStatus.STOPPED, "shutdown", ctx)


async def reboot(a: Reboot, ctx: ActionContext) -> None:
    vm = await _here(a.vmid, a.host, "reboot", ctx)
    ctx.check_ours(await ctx.owned(vm), "reboot")
    if vm.status is not VMStatus.RUNNING:
        raise PermanentError(f"VM {a.vmid} is {vm.status}, not running: nothing to reboot")
    ref = await ctx.call(f"reboot {a.vmid}", lambda: ctx.writer.reboot(host=vm.host, vmid=a.vmid))
    await ctx.tasks.wait(ref, f"reboot {a.vmid}")


async def _wait_for_effect(
    ref: TaskRef, before: ObservedVM, want: VMStatus, what: str, ctx: ActionContext
) -> None:
    """Wait for a power task; success is the VM in ``want`` (see the module docstring)."""
    vmid, host = before.vmid, before.host
    try:
        await ctx.tasks.wait(ref, f"{what} {vmid}")
    except PermanentError:
        vm = await ctx.status(vmid, host)
        if vm is None or vm.status is not want:
            raise
        log.info("task_failed_but_effect_present", vmid=vmid, action=what)
        return
    if before.ha_state is None:
        return  # not HA-managed: the task ending OK is the effect
    vm = await ctx.status(vmid, host)
    if vm is None or vm.status is not want:
        got = vm.status if vm is not None else "gone"
        # HA-managed VMs reach the state after the HA manager acts: not an error yet.
        raise TransientError(f"{what} {vmid}: task OK but VM is {got}, not {want}")
