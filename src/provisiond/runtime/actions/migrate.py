"""Migrate: a VM moves host, live (``online``) or offline; and the GPU move composed from steps.

The VM is re-read right before, on the source (``GET …/status/current``), and if it is not
there, on the target. Adoption: a VM already on its target (and unlocked) is *adopted*; a
``qmigrate``/``hamigrate`` task running for it — ours from before a restart, or another
leader's — is waited for, never re-POSTed. A migrate POST is never repeated without looking
first (a lost answer may hide an accepted POST). Success is the VM on the target in a fresh
read of the target.

The GPU move, which uses ``migrate`` for its offline step, is in ``gpumove``.
"""

from __future__ import annotations

from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import VMStatus
from provisiond.core.ports import TaskRef
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal, ReplanSignal


async def migrate(
    vmid: int,
    source: str,
    target: str,
    *,
    online: bool,
    local_disks: bool,
    ctx: ActionContext,
) -> None:
    vm = await ctx.status(vmid, source)
    if vm is None:
        there = await ctx.status(vmid, target)
        if there is not None and there.lock is None:
            raise AdoptedSignal(f"VM {vmid} already on {target}")
        if there is None:
            raise ReplanSignal(f"VM {vmid} is on neither {source} nor {target}: replanning")
    running = await _migration_running(vmid, ctx)
    if running is not None:
        await ctx.tasks.wait(running, f"migrate {vmid} (adopted)")
        await _expect_host(vmid, target, ctx)
        raise AdoptedSignal(f"VM {vmid} migration to {target} was under way (adopted)")
    if vm is None:  # on the target, locked, no migration running: someone else's doing
        raise PermanentError(f"VM {vmid} is on {target} but locked: replanning")
    if vm.status is VMStatus.UNKNOWN:
        raise TransientError(f"cannot migrate VM {vmid}: its host {source} does not answer")
    ctx.check_ours(await ctx.owned(vm), "migrate")
    attempts = 0

    async def attempt() -> TaskRef | None:
        nonlocal attempts
        attempts += 1
        if attempts > 1:  # the last POST may have been accepted: look first
            if await ctx.status(vmid, target) is not None:
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


async def _migration_running(vmid: int, ctx: ActionContext) -> TaskRef | None:
    for t in await ctx.active_tasks():
        if t.type in ("qmigrate", "hamigrate") and t.id == str(vmid):
            return TaskRef(node=t.node, upid=t.upid)
    return None


async def _expect_host(vmid: int, target: str, ctx: ActionContext) -> None:
    if await ctx.status(vmid, target) is None:
        raise TransientError(f"migrate {vmid}: VM is not on {target} yet")
