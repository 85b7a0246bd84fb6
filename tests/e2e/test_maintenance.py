"""Host maintenance evacuation end to end (issue 16): the daemon as a process, with the real
proxmoxer and ``kubernetes`` clients, against the Proxmox simulator and the Kubernetes simulator
linked to it (started VMs join as Nodes, GPU workers run ``inference`` pods under a PDB).

Topology ``cps-gpu-pair`` (beside this file): cps-gpu plus a second host with two A100 of the same
mapping. Everything is built on cit-gpu-01; then cit-gpu-01 goes into maintenance (the spec's
``policy.maintenance``, or Proxmox HA node maintenance set through the simulator): the control
plane live-migrates (no GPU), one GPU worker moves the offline way — cordon, drain (evictions
under the PDB), shutdown, offline migrate to cit-gpu-02, start, Ready, uncordon — and the other
GPU worker, for which no host has free devices, is reported blocked and left running where it
is. Then the same with the daemon killed (``kill -9``) after each step and restarted: the same
end state, and no finished step done twice (one shutdown, one migrate, one start, one cordon,
one uncordon).

A stopped VM's Node stays Ready for ``STALE_READY`` seconds (as a real one does ~40 s, until
the node controller notices): the move restarts the VM within that window, so it must tell the
new boot (``status.nodeInfo.bootID``) from the Ready the old one left behind — the node is
uncordoned only on the new boot, Ready.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import TIME_SCALE, Proc, converged, run_daemon, write_settings
from kubernetes import client

from provisiond.adapters.specfile import load_desired
from provisiond.core.observed import BOOT_ID_ANNOTATION, CORDONED_ANNOTATION
from provisiond.sim.kube import KubeSim, Membership, start_linked
from provisiond.sim.kube.testing import api_client
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HERE = Path(__file__).parent / "cps-gpu-pair"
WORKER, STUCK, CP = 1038, 1043, 1035  # the worker that moves, the one that cannot, the CP
NODE = "k3s-wk-gpu1"
SHUTDOWN = "/nodes/{node}/qemu/{vmid}/status/shutdown"
MIGRATE = "/nodes/{node}/qemu/{vmid}/migrate"
START = "/nodes/{node}/qemu/{vmid}/status/start"
STALE_READY = 15.0  # wall-clock seconds a stopped VM's Node stays Ready (the move takes less)


def fleet(maintenance: str) -> str:
    text = (HERE / "fleet.yaml").read_text()
    return text.replace("maintenance: [cit-gpu-02]", f"maintenance: [{maintenance}]")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SimHandle, KubeSim, Path, Path]]:
    spec = tmp_path / "spec.d"
    spec.mkdir()
    shutil.copy(HERE / "fleet.yaml", spec / "fleet.yaml")
    desired = load_desired([spec])
    with running_simulator(HERE / "topology.yaml", time_scale=TIME_SCALE) as sim:
        kube = start_linked(
            sim,
            membership=Membership.from_desired(desired),
            node_delay=0.3,
            ready_delay=0.3,
            pod_delay=0.3,
            stale_ready=STALE_READY,
        )
        try:
            cfg = write_settings(tmp_path, sim, spec, interval=5.0)
            settings = json.loads(cfg.read_text())
            settings["kubernetes"] = {
                "kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                "reconnect_initial": 0.05,
                "reconnect_max": 0.5,
            }
            # A killed leader's Lease runs out in seconds, not the default 15 s: the restarted
            # daemon is a standby until then (what is measured here is the resumed move).
            settings["leader_election"] = {
                "lease_duration": 4.0,
                "renew_deadline": 3.0,
                "retry_period": 0.5,
            }
            cfg.write_text(json.dumps(settings))
            yield sim, kube, spec, cfg
        finally:
            kube.stop()


def built(tmp_path: Path, sim: SimHandle, cfg: Path) -> None:
    """Everything on cit-gpu-01, nodes Ready and labelled; the daemon stopped again."""
    first = run_daemon(tmp_path, cfg)
    try:
        first.wait_for(converged, timeout=120)
    finally:
        first.terminate()
    assert {sim.vm(v).node for v in (WORKER, STUCK, CP)} == {"cit-gpu-01"}  # type: ignore[union-attr]


def node(kube: KubeSim, name: str = NODE) -> dict[str, Any]:
    got = kube.get("nodes", name)
    assert got is not None
    return got


def node_reasons(kube: KubeSim, name: str = NODE) -> list[str]:
    with api_client(kube) as api:
        listed = client.CoreV1Api(api).list_namespaced_event(
            "default", field_selector=f"involvedObject.kind=Node,involvedObject.name={name}"
        )
    return [e.reason for e in listed.items]


def check_evacuated(sim: SimHandle, kube: KubeSim, proc: Proc) -> None:
    worker, stuck, cp = (sim.vm(v) for v in (WORKER, STUCK, CP))
    assert worker is not None
    assert stuck is not None
    assert cp is not None
    assert (worker.node, worker.status) == ("cit-gpu-02", "running")
    assert worker.bound == {"hostpci0": "0000:01:00.0", "hostpci1": "0000:21:00.0"}
    assert (cp.node, cp.status) == ("cit-gpu-02", "running")  # live, without a drain
    assert (stuck.node, stuck.status) == ("cit-gpu-01", "running")  # nowhere to go: stays
    n = node(kube)
    assert not n["spec"].get("unschedulable")
    assert CORDONED_ANNOTATION not in n["metadata"].get("annotations", {})
    assert BOOT_ID_ANNOTATION not in n["metadata"].get("annotations", {})
    ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    stuck_node = node(kube, "k3s-wk-gpu2")
    assert not stuck_node["spec"].get("unschedulable")  # never cordoned: it does not move
    blocked = [
        e for e in proc.events() if e.get("event") == "plan_ready" and e.get("blocked", 0) > 0
    ]
    assert blocked, "the worker that cannot move is reported blocked"


def done(sim: SimHandle, template: str, vmid: int) -> int:
    """POSTs to ``template`` for ``vmid`` that took effect (answered 200; a request held and
    released by a test ends 503 without effect)."""
    return sum(
        1
        for r in sim.request_log("POST", template)
        if r.params.get("vmid") == str(vmid) and r.status == 200
    )


def counts(sim: SimHandle, kube: KubeSim) -> dict[str, int]:
    reasons = node_reasons(kube)
    return {
        "shutdown": done(sim, SHUTDOWN, WORKER),
        "migrate": done(sim, MIGRATE, WORKER),
        "start": done(sim, START, WORKER),
        "cordon": reasons.count("ProvisiondCordon"),
        "uncordon": reasons.count("ProvisiondUncordon"),
        "stuck_shutdown": done(sim, SHUTDOWN, STUCK),
        "stuck_migrate": done(sim, MIGRATE, STUCK),
    }


def moved(e: dict[str, Any]) -> bool:
    return (
        e.get("event") == "action_finished"
        and e.get("action_id") == f"gpu_move:{WORKER}"
        and e.get("outcome") == "succeeded"
    )


ONCE = {
    "shutdown": 1,
    "migrate": 1,
    "start": 1,
    "cordon": 1,
    "uncordon": 1,
    "stuck_shutdown": 0,
    "stuck_migrate": 0,
}


class NodeSamples:
    """The worker's Node every 10 ms, in a thread: (unschedulable, bootID, Ready)."""

    def __init__(self, kube: KubeSim) -> None:
        self.kube = kube
        self.samples: list[tuple[bool, str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            n = node(self.kube)
            boot = n["status"]["nodeInfo"]["bootID"]
            self.samples.append((bool(n["spec"].get("unschedulable")), boot, ready(self.kube)))

    def __enter__(self) -> NodeSamples:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def first_uncordoned(self) -> tuple[bool, str, bool]:
        """The first sample after the cordon that shows the node schedulable again."""
        seen = next(i for i, s in enumerate(self.samples) if s[0])
        return next(s for s in self.samples[seen:] if not s[0])


def test_maintenance_evacuates_a_gpu_worker_the_offline_way(
    tmp_path: Path, world: tuple[SimHandle, KubeSim, Path, Path]
) -> None:
    sim, kube, spec, cfg = world
    built(tmp_path, sim, cfg)
    start_before = done(sim, START, WORKER)
    boot_before = node(kube)["status"]["nodeInfo"]["bootID"]
    (spec / "fleet.yaml").write_text(fleet("cit-gpu-01"))
    daemon = run_daemon(tmp_path, cfg)
    try:
        with NodeSamples(kube) as samples:
            daemon.wait_for(moved, timeout=180)
    finally:
        daemon.terminate()
    check_evacuated(sim, kube, daemon)
    # the Ready the old boot left behind was seen, and the node uncordoned only on the new boot
    assert (True, boot_before, True) in samples.samples
    _, boot, was_ready = samples.first_uncordoned()
    assert (boot != boot_before, was_ready) == (True, True)
    got = counts(sim, kube)
    got["start"] -= start_before
    assert got == ONCE
    assert kube.request_counts()[("create", "pods/eviction")] >= 2  # its inference pods
    inference = [p for p in kube.objects("pods", "ml") if p["spec"].get("nodeName") == NODE]
    assert not any(p["metadata"].get("deletionTimestamp") for p in inference)


def test_proxmox_ha_node_maintenance_evacuates_like_the_spec_list(
    tmp_path: Path, world: tuple[SimHandle, KubeSim, Path, Path]
) -> None:
    sim, kube, spec, cfg = world
    built(tmp_path, sim, cfg)
    start_before = done(sim, START, WORKER)
    (spec / "fleet.yaml").write_text(fleet(""))  # the spec names no host
    sim.ha_node_maintenance("cit-gpu-01")  # ha-manager crm-command node-maintenance enable
    daemon = run_daemon(tmp_path, cfg)
    try:
        daemon.wait_for(moved, timeout=180)
    finally:
        daemon.terminate()
    check_evacuated(sim, kube, daemon)
    got = counts(sim, kube)
    got["start"] -= start_before
    assert got == ONCE
    assert sim.requests("GET", "/cluster/ha/status/manager_status") >= 1


# -- killed after each step ------------------------------------------------------------------------


def until(pred: Callable[[], bool], proc: Proc, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"never reached: {what}\n{proc.tail()}")
        time.sleep(0.005)


def in_flight(sim: SimHandle, template: str) -> bool:
    return any(
        r.params.get("vmid") == str(WORKER) and r.status == 0
        for r in sim.request_log("POST", template)
    )


def evictions(kube: KubeSim) -> int:
    return kube.request_counts().get(("create", "pods/eviction"), 0)


def node_patches(kube: KubeSim) -> int:
    return kube.request_counts().get(("patch", "nodes"), 0)


def unschedulable(kube: KubeSim) -> bool:
    return bool(node(kube)["spec"].get("unschedulable"))


def ready(kube: KubeSim) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in node(kube)["status"]["conditions"]
    )


def back(kube: KubeSim) -> bool:
    """Ready on another boot than the one the move's cordon recorded."""
    n = node(kube)
    before = n["metadata"].get("annotations", {}).get(BOOT_ID_ANNOTATION)
    return ready(kube) and before != n["status"]["nodeInfo"]["bootID"]


def kill_point(step: str, sim: SimHandle, kube: KubeSim, proc: Proc) -> None:
    """Let ``proc`` finish ``step`` and stop it right before the next one (a request held by
    a fault: a hang in Proxmox, latency in Kubernetes), then ``kill -9`` it."""
    if step == "cordon":  # the first eviction is held: cordoned, nothing evicted
        kube.inject("pods/eviction", verb="create", latency=20.0, times=1)
        until(lambda: evictions(kube) >= 1, proc, "the first eviction")
    elif step == "drain":  # every pod evicted; the shutdown POST hangs
        sim.inject(SHUTDOWN, method="POST", hang=True, vmid=WORKER, times=1)
        until(lambda: in_flight(sim, SHUTDOWN), proc, "the shutdown POST")
    elif step == "shutdown":
        sim.inject(MIGRATE, method="POST", hang=True, vmid=WORKER, times=1)
        until(lambda: in_flight(sim, MIGRATE), proc, "the migrate POST")
    elif step == "migrate":
        sim.inject(START, method="POST", hang=True, vmid=WORKER, times=1)
        until(lambda: in_flight(sim, START), proc, "the start POST")
    elif step == "start":  # running on the target, its node not back yet (maybe stale Ready)
        until(
            lambda: (
                (vm := sim.vm(WORKER)) is not None
                and (vm.node, vm.status) == ("cit-gpu-02", "running")
            ),
            proc,
            "the start",
        )
        assert not back(kube), "killed too late: the node is back already"
    else:  # "ready": the node Ready again; the uncordon patch is held
        until(lambda: unschedulable(kube), proc, "the cordon")
        patches = node_patches(kube)
        kube.inject("nodes", verb="patch", latency=20.0, times=1)
        until(lambda: node_patches(kube) > patches, proc, "the uncordon patch")
        assert back(kube)
    proc.kill9()
    sim.release_hangs()
    kube.clear_faults()


@pytest.mark.parametrize("step", ["cordon", "drain", "shutdown", "migrate", "start", "ready"])
def test_killed_after_each_step_the_move_resumes_and_repeats_nothing(
    tmp_path: Path, world: tuple[SimHandle, KubeSim, Path, Path], step: str
) -> None:
    sim, kube, spec, cfg = world
    built(tmp_path, sim, cfg)
    start_before = done(sim, START, WORKER)
    (spec / "fleet.yaml").write_text(fleet("cit-gpu-01"))
    first = run_daemon(tmp_path, cfg)
    try:
        kill_point(step, sim, kube, first)
    finally:
        if first.popen.poll() is None:
            first.kill9()
    assert unschedulable(kube)  # the node stays cordoned while the move is unfinished
    second = run_daemon(tmp_path, cfg)
    try:
        until(
            lambda: not unschedulable(kube) and back(kube) and sim.vm(WORKER).node == "cit-gpu-02",  # type: ignore[union-attr]
            second,
            "the move finished",
        )
        second.wait_for(converged, timeout=120)
    finally:
        second.terminate()
    check_evacuated(sim, kube, second)
    got = counts(sim, kube)
    got["start"] -= start_before
    assert got == ONCE, step
