"""Power: start, shutdown (optionally forced) and reboot of an existing VM.

Adoption: a VM already in the wanted state is *adopted* without a call. Success is the effect,
not the task: after a start/shutdown task the VM must show the wanted status on a fresh read
(an HA-managed VM gets there after the HA manager acts, so a mismatch is transient); and a failed
task whose effect is there anyway — a retried POST whose first answer was lost, so the second
task found the VM already started/stopped — is success, not a failure to back off from.
Shutdown and reboot are disruptive: the VM is re-checked as ours right before the call.
"""

from __future__ import annotations

import structlog

from provisiond.core.actions import Reboot
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import VMStatus
from provisiond.core.ports import TaskRef
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal, locked

log = structlog.get_logger("provisiond.executor")


async def start(vmid: int, host: str, ctx: ActionContext) -> None:
    vm = await ctx.present(vmid, "start")
    if vm.status is VMStatus.RUNNING:
        raise AdoptedSignal(f"VM {vmid} already running")
    if vm.lock is not None:
        raise locked(vm.vmid, vm.lock)
    node = vm.host or host
    ref = await ctx.call(f"start {vmid}", lambda: ctx.writer.start(host=node, vmid=vmid))
    await _wait_for_effect(ref, vmid, VMStatus.RUNNING, "start", ctx)


async def shutdown(vmid: int, host: str, force_stop: bool, ctx: ActionContext) -> None:
    vm = await ctx.present(vmid, "shut down")
    if vm.status is VMStatus.STOPPED:
        raise AdoptedSignal(f"VM {vmid} already stopped")
    ctx.check_ours(vm, "shut down")
    if vm.host != host:
        raise PermanentError(f"VM {vmid} moved to {vm.host} since the plan; replanning")
    ref = await ctx.call(
        f"shutdown {vmid}",
        lambda: ctx.writer.shutdown(
            host=host, vmid=vmid, shutdown_timeout=60, force_stop=force_stop
        ),
    )
    await _wait_for_effect(ref, vmid, VMStatus.STOPPED, "shutdown", ctx)


async def reboot(a: Reboot, ctx: ActionContext) -> None:
    vm = await ctx.present(a.vmid, "reboot")
    ctx.check_ours(vm, "reboot")
    if vm.status is not VMStatus.RUNNING:
        raise PermanentError(f"VM {a.vmid} is {vm.status}, not running: nothing to reboot")
    ref = await ctx.call(f"reboot {a.vmid}", lambda: ctx.writer.reboot(host=vm.host, vmid=a.vmid))
    await ctx.tasks.wait(ref, f"reboot {a.vmid}")


async def _wait_for_effect(
    ref: TaskRef, vmid: int, want: VMStatus, what: str, ctx: ActionContext
) -> None:
    """Wait for a power task; success is the VM in ``want`` (see the module docstring)."""
    try:
        await ctx.tasks.wait(ref, f"{what} {vmid}")
    except PermanentError:
        vm = await ctx.read(vmid)
        if vm is None or vm.status is not want:
            raise
        log.info("task_failed_but_effect_present", vmid=vmid, action=what)
        return
    vm = await ctx.read(vmid)
    if vm is None or vm.status is not want:
        got = vm.status if vm is not None else "gone"
        # HA-managed VMs reach the state after the HA manager acts: not an error yet.
        raise TransientError(f"{what} {vmid}: task OK but VM is {got}, not {want}")
