"""Migrate: a VM moves host, live (``online``) or offline; and the GPU move composed from steps.

The VM is re-read right before, on the source (``GET …/status/current``), and if it is not
there, on the target. Adoption: a VM already on its target (and unlocked) is *adopted*; a
``qmigrate``/``hamigrate`` task running for it — ours from before a restart, or another
leader's — is waited for, never re-POSTed. Before the POST, PVE's precondition
(``GET …/migrate?target=``) is asked and obeyed (``obey``): a target it does not allow, local
resources, or a running VM planned offline fail the action with PVE's reason; a live move with
local disks gets ``with-local-disks``. A migrate POST is never repeated without looking first
(a lost answer may hide an accepted POST). Success is the VM on the target in a fresh read of
the target.

The GPU move, which uses ``migrate`` for its offline step, is in ``gpumove``.
"""

from __future__ import annotations

from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import VMStatus
from provisiond.core.ports import MigratePrecondition, TaskRef
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
    pre = await ctx.call(
        f"migrate precondition {vmid}",
        lambda: ctx.writer.migrate_precondition(host=source, vmid=vmid, target=target),
    )
    local_disks = obey(pre, vmid, target, online=online, local_disks=local_disks)
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


def obey(
    pre: MigratePrecondition, vmid: int, target: str, *, online: bool, local_disks: bool
) -> bool:
    """Check PVE's migrate precondition before the POST; the ``with-local-disks`` to send.

    Refused (the action fails with PVE's reason): a target PVE does not allow (storage or
    mapped devices missing there); local resources (a raw ``hostpciN``, or a mapped device that
    cannot live-migrate while the VM runs) — the task would abort; a running VM the plan meant
    to move offline. Adjusted: a live move of a VM with local disks sends ``with-local-disks``.
    """
    if target not in pre.allowed_nodes:
        why = "; ".join(pre.not_allowed.get(target, ())) or "not among its allowed nodes"
        raise PermanentError(f"migrate {vmid}: PVE does not allow target {target} ({why})")
    if pre.local_resources:
        kind = "live-" if pre.running else ""
        res = ", ".join(pre.local_resources)
        raise PermanentError(f"migrate {vmid}: cannot {kind}migrate with local resources {res}")
    if pre.running and not online:
        raise PermanentError(f"migrate {vmid}: VM runs, the plan moves it offline: replanning")
    return local_disks or (online and pre.running and bool(pre.local_disks))


async def _migration_running(vmid: int, ctx: ActionContext) -> TaskRef | None:
    for t in await ctx.active_tasks():
        if t.type in ("qmigrate", "hamigrate") and t.id == str(vmid):
            return TaskRef(node=t.node, upid=t.upid)
    return None


async def _expect_host(vmid: int, target: str, ctx: ActionContext) -> None:
    if await ctx.status(vmid, target) is None:
        raise TransientError(f"migrate {vmid}: VM is not on {target} yet")
