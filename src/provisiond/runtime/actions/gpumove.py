"""The GPU move (DESIGN §6): a running VM whose PCI mapping cannot live-migrate moves offline,
its Kubernetes node drained first and given back once Ready.

Steps, in the order the plan lists them (``GpuMove.steps``): cordon → drain → shutdown → offline
migrate → start → wait Ready → uncordon (without a Kubernetes node: the middle three). Each step
reads first and does only what is missing — a node already unschedulable is not cordoned, a
drain finds nothing left to evict, a VM already stopped or already on the target is adopted, a
``qmigrate`` under way is waited for — so a daemon killed at any step resumes where it stopped,
and a step that finished is never repeated. The shutdown uses the fleet's
``forceStopAfterShutdownTimeout`` (stop only when the spec allows). A move interrupted after its
shutdown is finished by later plans instead (an offline ``Migrate``, a ``Start``, an
``Uncordon`` once the node is Ready): the planner counts its node as out meanwhile, so the
pool's budget holds (``core/planning/disruption.py``).

A step that fails fails the move: the node stays cordoned (never uncordoned on a VM that did not
come back), and the next cycle replans from what it observes.
"""

from __future__ import annotations

from provisiond.core.actions import Cordon, GpuMove, MoveStep, Uncordon
from provisiond.runtime.actions import drain, kube, power
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal
from provisiond.runtime.actions.migrate import migrate


async def gpu_move(a: GpuMove, ctx: ActionContext) -> None:
    did_something = False
    node = a.node or ""
    for step in a.steps:
        try:
            if step is MoveStep.CORDON:
                cordon = Cordon(id=f"cordon:{node}", reason=a.reason, node=node, vmid=a.vmid)
                await kube.cordon(cordon, ctx, record_boot=True)
            elif step is MoveStep.DRAIN:
                evicted = await drain.evict_all(
                    node,
                    limit=a.drain_timeout,
                    delete_empty_dir_data=a.delete_empty_dir_data,
                    why=a.reason,
                    ctx=ctx,
                )
                if not evicted:
                    continue  # nothing was left to evict
            elif step is MoveStep.SHUTDOWN:
                if await ctx.status(a.vmid, a.source) is None:
                    continue  # not on the source any more: the migrate step looks at the target
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
            elif step is MoveStep.WAIT_READY:
                await drain.wait_ready(node, ctx)
                continue  # a read, not a change
            else:  # MoveStep.UNCORDON
                back = Uncordon(id=f"uncordon:{node}", reason=a.reason, node=node, vmid=a.vmid)
                await kube.uncordon(back, ctx)
            did_something = True
        except AdoptedSignal:
            continue  # this step's effect is in place: go on with the next one
    if not did_something:
        raise AdoptedSignal(f"VM {a.vmid} already on {a.target} in the wanted state")
