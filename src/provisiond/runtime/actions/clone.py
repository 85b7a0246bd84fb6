"""Create or adopt: a ``Clone`` action becomes a VM at its VMID exactly once (DESIGN §5, §6).

Adoption before creation — the VMID is the idempotency key:
- our VMID present and ours → adopted; present with ``lock: clone`` → a clone is under way and
  is waited for (stuck, i.e. no clone task of the template running → fail; never unlock);
- our VMID absent but a clone of our template running that this process did not start → it may
  be ours from before a restart: waited for, never re-POSTed, then looked at again;
- our VMID taken by a VM provisiond does not own → a conflict, left alone.

A clone POST is never repeated without looking first: a POST whose answer was lost may have been
accepted. ``Cloner`` remembers, across runs, the clone tasks this process started and the POSTs
still awaiting their UPID, so those are not mistaken for someone else's clone.

Cost: the first look is the observation the plan was just made from (our VMID absent from a
trustworthy VM list, no clone of the template running that this process did not start) — no
re-listing of the cluster; and a clone task that ended ``OK`` is the proof the VM exists (the
next action reads it on its host anyway). Only the unusual paths (a VMID or clone seen, a POST
retried, no observation given) list the cluster again.
"""

from __future__ import annotations

from typing import NoReturn

from provisiond.core.actions import Clone
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import ObservedVM
from provisiond.core.ownership import owner
from provisiond.core.ports import TaskRef
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal, ReplanSignal, locked


class Cloner:
    def __init__(self) -> None:
        self._own_upids: set[str] = set()  # tasks this process started
        self._posting: dict[int, int] = {}  # template vmid -> clone POSTs awaiting their UPID

    async def clone(self, a: Clone, ctx: ActionContext) -> None:
        try:
            await self._clone_once(a, ctx)
        except AdoptedSignal:
            ctx.created[a.vmid] = a.fleet
            raise
        ctx.created[a.vmid] = a.fleet

    def _clear_in_observation(self, a: Clone, ctx: ActionContext) -> bool:
        """The observation the plan came from shows nothing to adopt or wait for."""
        seen = ctx.observed
        if seen is None or not seen.unobserved.vmids_trustworthy:
            return False
        if any(vm.vmid == a.vmid for vm in seen.vms):
            return False
        return not any(
            t.type == "qmclone" and t.id == str(a.template_vmid) and t.upid not in self._own_upids
            for t in seen.tasks
        )

    async def _clone_once(self, a: Clone, ctx: ActionContext) -> None:
        if not self._clear_in_observation(a, ctx):
            vm = await self._settle(a, ctx)
            if vm is not None:
                _adopt(a, vm, "already exists")
        attempts = 0
        adopted = False

        async def attempt() -> TaskRef | None:
            nonlocal attempts, adopted
            attempts += 1
            # The previous POST may have been accepted: look before re-POSTing.
            if attempts > 1 and (
                await ctx.read(a.vmid) is not None
                or await self._foreign_clone_running(a.template_vmid, ctx)
            ):
                adopted = True
                return None
            self._posting[a.template_vmid] = self._posting.get(a.template_vmid, 0) + 1
            try:
                ref = await ctx.writer.clone(
                    template_host=a.template_host,
                    template_vmid=a.template_vmid,
                    newid=a.vmid,
                    name=a.name,
                    description=a.description,
                    target=a.target,
                    full=a.full,
                    storage=a.storage,
                    pool=a.proxmox_pool,
                )
                self._own_upids.add(ref.upid)
                return ref
            finally:
                self._posting[a.template_vmid] -= 1

        try:
            ref = await ctx.call(f"clone {a.vmid}", attempt)
        except PermanentError as exc:
            if "already exists" not in str(exc):
                raise
            ref = None  # a racing POST (ours, or another leader's) took the VMID: re-observe
            adopted = True
        if ref is not None:
            try:
                await ctx.tasks.wait(ref, f"clone {a.vmid}")
            finally:
                self._own_upids.discard(ref.upid)
            if not adopted:
                return  # our POST, our task, ended OK: the VM is there (PVE moved its config)
        vm = await self._settle(a, ctx)
        if vm is None:
            raise PermanentError(f"clone {a.vmid}: the task ended but VM {a.vmid} is not there")
        if adopted:
            _adopt(a, vm, "appeared after a clone request whose answer was lost")

    async def _settle(self, a: Clone, ctx: ActionContext) -> ObservedVM | None:
        """Wait out a clone under way; the settled VM if it exists (ours), else ``None``.

        - our VMID with ``lock: clone``: a clone is in progress → wait for the lock to clear
          (stuck, i.e. no clone task of the template running → fail; never unlock);
        - our VMID absent but a clone of our template running that this process did not start:
          it may be ours from before a restart → wait until it ends, then look again;
        - our VMID present with another owner, or with its config read and no marker or tags:
          a conflict — fail, never touch it.
        """
        deadline = ctx.tasks.deadline()
        nxt = ctx.tasks.polls()
        while True:
            vm = await ctx.read(a.vmid)
            if vm is None:
                if not await self._foreign_clone_running(a.template_vmid, ctx):
                    return None
                why = f"clone of template {a.template_vmid} running; waiting for VM {a.vmid}"
            elif vm.lock == "clone":
                tasks = await ctx.active_tasks()
                cloning = any(t.type == "qmclone" and t.id == str(a.template_vmid) for t in tasks)
                if not cloning and not self._posting.get(a.template_vmid):
                    raise PermanentError(
                        f"VM {a.vmid} is locked (clone) but no clone task runs: stuck "
                        "placeholder; provisiond never unlocks it — check the task log"
                    )
                why = f"VM {a.vmid} is being cloned (lock: clone)"
            elif vm.lock is not None:
                raise locked(vm.vmid, vm.lock)
            else:
                fleet = owner(vm)
                if (fleet is not None and fleet != a.fleet) or (
                    fleet is None and vm.config is not None
                ):
                    raise PermanentError(
                        f"VMID {a.vmid} is taken by a VM provisiond does not own "
                        f"({vm.name!r}); conflict left alone"
                    )
                return vm
            if ctx.tasks.clock() >= deadline:
                raise TransientError(f"{why} for over {ctx.tasks.config.task_timeout:.0f}s")
            await ctx.tasks.pause(nxt(), why)

    async def _foreign_clone_running(self, template_vmid: int, ctx: ActionContext) -> bool:
        """A clone of ``template_vmid`` runs that this process did not start (or is starting)."""
        unknown = [
            t
            for t in await ctx.active_tasks()
            if t.type == "qmclone" and t.id == str(template_vmid) and t.upid not in self._own_upids
        ]
        return len(unknown) > self._posting.get(template_vmid, 0)


def _adopt(a: Clone, vm: ObservedVM, how: str) -> NoReturn:
    """A VM at our VMID we did not just create: adopt it if it provably is ours."""
    if owner(vm) == a.fleet:
        raise AdoptedSignal(f"VM {a.vmid} {how} (adopted)")
    # The fresh read carries no config (description marker): let the next full observation
    # decide ownership instead of configuring a VM that might not be ours.
    raise ReplanSignal(f"VM {a.vmid} {how}; its ownership is checked by the next observation")
