"""Migrate: a VM moves host, live (``online``) or offline; and the GPU move composed from steps.

Adoption: a VM already on its target (and unlocked) is *adopted*; a ``qmigrate``/``hamigrate``
task running for it — ours from before a restart, or another leader's — is waited for, never
re-POSTed. A migrate POST is never repeated without looking first (a lost answer may hide an
accepted POST). Success is the VM on the target in a fresh read.

A ``GpuMove`` is the ordered steps shutdown → offline migrate → start (its Kubernetes steps fail
as not configured, see ``kube``); a step whose effect is already in place is skipped, so a move
interrupted halfway resumes where it stopped.
"""

from __future__ import annotations

from provisiond.core.actions import GpuMove, MoveStep
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.ports import TaskRef
from provisiond.runtime.actions import kube, power
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal


async def migrate(
    vmid: int,
    source: str,
    target: str,
    *,
    online: bool,
    local_disks: bool,
    ctx: ActionContext,
) -> None:
    vm = await ctx.present(vmid, "migrate")
    if vm.host == target and vm.lock is None:
        raise AdoptedSignal(f"VM {vmid} already on {target}")
    running = await _migration_running(vmid, ctx)
    if running is not None:
        await ctx.tasks.wait(running, f"migrate {vmid} (adopted)")
        await _expect_host(vmid, target, ctx)
        raise AdoptedSignal(f"VM {vmid} migration to {target} was under way (adopted)")
    ctx.check_ours(vm, "migrate")
    if vm.host != source:
        raise PermanentError(f"VM {vmid} is on {vm.host}, not {source}: replanning")
    attempts = 0

    async def attempt() -> TaskRef | None:
        nonlocal attempts
        attempts += 1
        if attempts > 1:  # the last POST may have been accepted: look first
            again = await ctx.read(vmid)
            if again is not None and again.host == target:
                return None
            if await _migration_running(vmid, ctx) is not None:
                return None
        return await ctx.writer.migrate(
            host=source, vmid=vmid, target=target, online=online, with_local_disks=local_disks
        )

    ref = await ctx.call(f"migrate {vmid}", attempt)
    if ref is None:
        ref = await _migration_running(vmid, ctx)
    if ref is not None:
        await ctx.tasks.wait(ref, f"migrate {vmid}")
    await _expect_host(vmid, target, ctx)


async def gpu_move(a: GpuMove, ctx: ActionContext) -> None:
    did_something = False
    for step in a.steps:
        if step in kube.NODE_STEPS:
            kube.not_configured(f"{step.value} node {a.node} of VM {a.vmid}")
        try:
            if step is MoveStep.SHUTDOWN:
                await power.shutdown(a.vmid, a.source, a.force_stop, ctx)
            elif step is MoveStep.MIGRATE_OFFLINE:
                await migrate(
                    a.vmid,
                    a.source,
                    a.target,
                    online=False,
                    local_disks=a.with_local_disks,
                    ctx=ctx,
                )
            elif step is MoveStep.START:
                await power.start(a.vmid, a.target, ctx)
            did_something = True
        except AdoptedSignal:
            continue  # this step's effect is in place: go on with the next one
    if not did_something:
        raise AdoptedSignal(f"VM {a.vmid} already on {a.target} in the wanted state")


async def _migration_running(vmid: int, ctx: ActionContext) -> TaskRef | None:
    for t in await ctx.active_tasks():
        if t.type in ("qmigrate", "hamigrate") and t.id == str(vmid):
            return TaskRef(node=t.node, upid=t.upid)
    return None


async def _expect_host(vmid: int, target: str, ctx: ActionContext) -> None:
    vm = await ctx.read(vmid)
    if vm is None or vm.host != target:
        got = vm.host if vm is not None else "gone"
        raise TransientError(f"migrate {vmid}: VM is on {got}, not {target} yet")
