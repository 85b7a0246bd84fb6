"""VM power endpoints: start, stop, shutdown and reboot, each a task; on an HA-managed VM a
request to the HA stack (``ha.py``) that runs the same body later as the real task.
"""

from __future__ import annotations

import time

from provisiond.sim.pve.errors import PveError, TaskError
from provisiond.sim.pve.handlers import Call, ha
from provisiond.sim.pve.handlers.guards import refuse_skiplock, task_lock
from provisiond.sim.pve.state import HOSTPCI_RE, Cluster, VmState
from provisiond.sim.pve.tasks import DURATIONS, Body, TaskContext


async def start_vm(cluster: Cluster, vm: VmState, ctx: TaskContext) -> None:
    task_lock(vm)
    if vm.is_template:
        raise TaskError("you can't start a vm if it's a template")
    if vm.running:
        raise TaskError(f"VM {vm.vmid} already running")
    vm.apply_pending()
    vm.bound.clear()
    try:
        for slot, value in sorted(vm.config.items()):
            if HOSTPCI_RE.match(slot):
                try:
                    cluster.bind_device(vm, slot, str(value))
                except PveError as exc:
                    raise TaskError(exc.message) from None
    except TaskError:
        vm.bound.clear()
        raise
    vm.status = "running"  # devices are claimed from here on
    vm.paused = False
    await ctx.progress_to(1.0, DURATIONS["qmstart"])
    vm.started_at = time.time()


def _launch(call: Call, vm: VmState, task_type: str, body: Body, *, ha_type: str) -> str:
    """The ``task_type`` task; on an HA-managed VM a request to the HA stack (``ha.py``) that
    runs ``body`` as ``task_type`` later."""
    if vm.hastate is not None:
        line = f"Requesting HA {ha_type.removeprefix('ha')} for VM {vm.vmid}"
        return ha.request(
            call.cluster,
            vm,
            call.user,
            ha_type=ha_type,
            real_type=task_type,
            body=body,
            log_line=line,
        )
    return call.cluster.tasks.start(vm.node, task_type, str(vm.vmid), call.user, body).upid


def _power_off(vm: VmState) -> None:
    vm.status = "stopped"
    vm.paused = False
    vm.started_at = None
    vm.bound.clear()


def start_body(cluster: Cluster, vm: VmState) -> Body:
    async def body(ctx: TaskContext) -> None:
        if vm.lock == "suspended":
            vm.config.pop("lock")
            vm.status = "running"
            ctx.log("Resuming suspended VM")
            return
        await start_vm(cluster, vm, ctx)

    return body


async def start(call: Call) -> object:
    refuse_skiplock(call)
    vm = call.vm()
    body = start_body(call.cluster, vm)
    return _launch(call, vm, "qmstart", body, ha_type="hastart")


def stop_body(vm: VmState) -> Body:
    async def body(ctx: TaskContext) -> None:
        if not vm.running:
            return
        task_lock(vm)
        await ctx.progress_to(1.0, DURATIONS["qmstop"])
        _power_off(vm)

    return body


async def stop(call: Call) -> object:
    refuse_skiplock(call)
    vm = call.vm()
    body = stop_body(vm)
    return _launch(call, vm, "qmstop", body, ha_type="hastop")


async def _shutdown(vm: VmState, ctx: TaskContext, wait: float, force: bool) -> None:
    if not vm.running:
        return
    task_lock(vm)
    if vm.acpi_responds:
        await ctx.progress_to(0.9, min(DURATIONS["qmshutdown"], wait))
    else:
        await ctx.progress_to(0.9, wait)
        if not force:
            raise TaskError("VM quit/powerdown failed - got timeout")
        ctx.log("VM still running - terminating now with SIGTERM")
    _power_off(vm)


async def shutdown(call: Call) -> object:
    refuse_skiplock(call)
    vm = call.vm()
    force = call.flag("forceStop")
    if vm.running and vm.paused and not force:
        raise PveError("VM is paused - cannot shutdown")
    timeout = float(call.get_int("timeout", 60) or 0)

    async def body(ctx: TaskContext) -> None:
        await _shutdown(vm, ctx, timeout, force)

    return _launch(call, vm, "qmshutdown", body, ha_type="hastop")


async def reboot(call: Call) -> object:
    vm = call.vm()
    if not vm.running:
        raise PveError(f"VM {vm.vmid} not running")
    if vm.paused:
        raise PveError("VM is paused - cannot shutdown")
    timeout = float(call.get_int("timeout", 60) or 0)
    cluster = call.cluster

    async def body(ctx: TaskContext) -> None:
        await _shutdown(vm, ctx, timeout, False)
        await start_vm(cluster, vm, ctx)

    return cluster.tasks.start(vm.node, "qmreboot", str(vm.vmid), call.user, body).upid


def _running_or_fail(vm: VmState) -> None:
    """[sync] qemu-server's ``VM <id> not running`` before the worker forks."""
    if not vm.running:
        raise PveError(f"VM {vm.vmid} not running")


async def suspend(call: Call) -> object:
    """``qmsuspend``: pause the guest (``qmpstatus: paused``); ``todisk`` hibernates it — the
    VM stops with ``lock: suspended`` and the next start resumes it."""
    refuse_skiplock(call)
    vm = call.vm()
    _running_or_fail(vm)
    todisk = call.flag("todisk")
    skiplock = call.flag("skiplock")

    async def body(ctx: TaskContext) -> None:
        if not skiplock:
            task_lock(vm)
        await ctx.progress_to(1.0, DURATIONS["qmsuspend"])
        if todisk:
            _power_off(vm)
            vm.config["lock"] = "suspended"
        else:
            vm.paused = True

    return call.cluster.tasks.start(vm.node, "qmsuspend", str(vm.vmid), call.user, body).upid


async def resume(call: Call) -> object:
    """``qmresume``: continue a paused guest; a VM suspended to disk is started."""
    refuse_skiplock(call)
    vm = call.vm()
    cluster = call.cluster
    if vm.lock != "suspended" and not vm.running and not call.flag("nocheck"):
        raise PveError(f"VM {vm.vmid} not running")

    async def body(ctx: TaskContext) -> None:
        if vm.lock == "suspended":
            await start_body(cluster, vm)(ctx)
            return
        if not call.flag("skiplock"):
            task_lock(vm)
        await ctx.progress_to(1.0, DURATIONS["qmresume"])
        vm.paused = False

    return cluster.tasks.start(vm.node, "qmresume", str(vm.vmid), call.user, body).upid


async def reset(call: Call) -> object:
    """``qmreset``: a hard reset of the running guest (the QEMU process stays)."""
    refuse_skiplock(call)
    vm = call.vm()
    _running_or_fail(vm)
    skiplock = call.flag("skiplock")

    async def body(ctx: TaskContext) -> None:
        if not skiplock:
            task_lock(vm)
        await ctx.progress_to(1.0, DURATIONS["qmreset"])
        vm.paused = False

    return call.cluster.tasks.start(vm.node, "qmreset", str(vm.vmid), call.user, body).upid
