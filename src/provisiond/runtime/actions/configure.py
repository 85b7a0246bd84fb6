"""Configure and resize: changes to an existing VM's config and disks, on the config just read.

Right before writing, the VM's config is re-read on its host (``GET …/config``: pending values
merged in, with its ``digest``), and:
- a VM gone from that host → replanned (the next observation says where it is);
- ownership re-checked (not another fleet's, not paused, not locked);
- the write re-derived: only the action's keys that still differ from the spec on the config
  just read are written (the planner's own ``config_drift``), so a change made meanwhile by
  someone else is neither undone blindly nor repeated; nothing left → *adopted*;
- the write sends ``digest=``: if the config changed between the read and the write, PVE answers
  ``checksum mismatch`` and the VM is requeued (re-observed, replanned), not failed.

A config write is synchronous in Proxmox (no task). Its effect — including a value PVE keeps
pending — is judged by the next cycle's observation; a write that changes nothing visible is
held back by the executor's no-effect limit. A disk grow is a task, waited for; it re-checks on
the fresh config that the disk exists and is still smaller than wanted.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from functools import partial
from typing import Protocol, TypeVar

from provisiond.core.actions import Configure, GrowDisk
from provisiond.core.drift import config_drift
from provisiond.core.errors import PermanentError
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ports import StaleDigestError, VMConfigRead
from provisiond.runtime.actions.context import (
    ActionContext,
    AdoptedSignal,
    ReplanSignal,
    RequeueSignal,
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _DigestWrite(Protocol[T_co]):
    """A ``ProxmoxWriter`` call with all but the VM and the digest given (``functools.partial``)."""

    def __call__(self, *, host: str, vmid: int, digest: str | None) -> Awaitable[T_co]: ...


async def _fresh(vmid: int, host: str, what: str, ctx: ActionContext) -> VMConfigRead:
    """The VM's config read now on ``host``, after the ownership re-check."""
    read = await ctx.config(vmid, host)
    if read is None:
        raise ReplanSignal(f"cannot {what} VM {vmid}: not on {host} (any more); replanning")
    vm = ObservedVM(
        vmid=vmid,
        name="",
        host=host,
        status=VMStatus.UNKNOWN,
        cores=read.config.cores,
        memory_mib=read.config.memory_mib,
        lock=read.lock,
        tags=read.config.tags,
        config=read.config,
    )
    ctx.check_not_foreign(vm, what)
    return read


async def _write(
    what: str,
    write: _DigestWrite[T],
    a: Configure | GrowDisk,
    read: VMConfigRead,
    ctx: ActionContext,
) -> T:
    """``write`` to ``a``'s VM on its host, carrying the digest of ``read``; a stale digest
    requeues the VM (never re-sent)."""
    try:
        return await ctx.call(what, lambda: write(host=a.host, vmid=a.vmid, digest=read.digest))
    except StaleDigestError as exc:
        raise RequeueSignal(f"{what}: changed since read ({exc}); requeued") from exc


def still_needed(a: Configure, read: VMConfigRead, ctx: ActionContext) -> Configure:
    """The part of ``a`` that the config just read still lacks (all of it without a spec)."""
    d = ctx.desired.get(a.vmid)
    if d is None:
        return a
    cfg = read.config
    default_storage = d.storage or next((x.storage for x in cfg.disks.values()), None)
    drift = config_drift(d, cfg, default_storage=default_storage)
    values = {k: drift.values[k] for k in a.values if k in drift.values}
    delete = tuple(k for k in a.delete if k in drift.delete)
    return replace(a, values=values, delete=delete)


async def configure(a: Configure, ctx: ActionContext) -> None:
    if not a.values and not a.delete:
        raise AdoptedSignal("nothing to change")
    read = await _fresh(a.vmid, a.host, "configure", ctx)
    todo = still_needed(a, read, ctx)
    if not todo.values and not todo.delete:
        raise AdoptedSignal(f"VM {a.vmid}: the config just read already has it")
    configure = partial(ctx.writer.configure, values=todo.values, delete=todo.delete)
    await _write(f"configure {a.vmid}", configure, a, read, ctx)


async def grow(a: GrowDisk, ctx: ActionContext) -> None:
    read = await _fresh(a.vmid, a.host, "resize", ctx)
    disk = read.config.disks.get(a.disk)
    if disk is None:
        raise PermanentError(f"resize {a.vmid}: disk {a.disk} does not exist")
    if disk.size_bytes >= a.size_bytes:
        raise AdoptedSignal(f"VM {a.vmid} {a.disk} is already {disk.size_bytes} bytes")
    resize = partial(ctx.writer.resize, disk=a.disk, size_bytes=a.size_bytes)
    ref = await _write(f"resize {a.vmid}", resize, a, read, ctx)
    await ctx.tasks.wait(ref, f"resize {a.vmid} {a.disk}")
