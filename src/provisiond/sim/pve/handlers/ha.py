"""HA-managed VMs: start, stop, shutdown and migrate become requests to the HA manager.

For a VM with an HA state (``hastate`` in the topology and in ``/cluster/resources``) PVE's API
does not act itself: it forks a short ``hastart`` / ``hastop`` / ``hamigrate`` task that only
records the request (``ha-manager set …`` / ``crm-command …``) and ends ``OK``. The HA stack then
does the work in its next rounds, as a separate ``qmstart`` / ``qmstop`` / ``qmshutdown`` /
``qmigrate`` task run by ``root@pam`` on the VM's node. So the first task's ``OK`` says nothing
about the outcome: a client has to watch the VM (or the second task) — SEMANTICS §4.

While the request is pending the VM's ``hastate`` shows the transition (``starting``,
``request_stop``, ``migrate``); afterwards ``started`` / ``stopped``, or ``error`` when the
real start failed. A failed migration leaves the state as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from provisiond.sim.pve.errors import TaskError
from provisiond.sim.pve.state import Cluster, VmState
from provisiond.sim.pve.tasks import Body, TaskContext

HA_REQUEST_SECONDS = 1.0  # the ha-manager CLI call inside the hastart/hastop/hamigrate task
HA_ROUND_SECONDS = 10.0  # CRM + LRM rounds until the HA stack acts on a request
HA_USER = "root@pam"

# request task type -> (state while pending, state after success, state after failure)
_STATES: dict[str, tuple[str, str | None, str | None]] = {
    "hastart": ("starting", "started", "error"),
    "hastop": ("request_stop", "stopped", None),
    "hamigrate": ("migrate", None, None),  # None: back to what it was
}


def request(
    cluster: Cluster,
    vm: VmState,
    user: str,
    *,
    ha_type: str,
    real_type: str,
    body: Body,
    log_line: str,
    admit: Callable[[], bool] | None = None,
) -> str:
    """Start the ``ha_type`` request task; the HA stack runs ``body`` as ``real_type`` later,
    unless ``admit`` (the CRM's check of the queued command, 9.x) drops the request."""
    pending, done, failed = _STATES[ha_type]
    before = vm.hastate

    def settle(ok: bool) -> None:
        if cluster.vms.get(vm.vmid) is vm:
            vm.hastate = (done if ok else failed) or before

    async def real_body(ctx: TaskContext) -> None:
        try:
            await body(ctx)
        except TaskError:
            settle(ok=False)
            raise
        settle(ok=True)

    def run_real() -> None:
        if admit is not None and not admit():
            settle(ok=True)  # dropped: the state is what it was
            return
        if cluster.vms.get(vm.vmid) is vm:  # not destroyed meanwhile
            cluster.tasks.start(vm.node, real_type, str(vm.vmid), HA_USER, real_body)

    async def ha_body(ctx: TaskContext) -> None:
        ctx.log(log_line)
        vm.hastate = pending
        await ctx.progress_to(1.0, HA_REQUEST_SECONDS)
        asyncio.get_running_loop().call_later(HA_ROUND_SECONDS * cluster.time_scale, run_real)

    return cluster.tasks.start(vm.node, ha_type, str(vm.vmid), user, ha_body).upid
