"""The whole daemon against the Proxmox VE simulator through the real proxmoxer client.

Convergence and idempotence run the daemon's pieces in-process (the simulator counts requests);
crash safety, SIGTERM and spec reloads run ``provisiond run``/``apply`` as separate processes
and kill them at deterministic points using the simulator's holds.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e_support import (
    TIME_SCALE,
    answered,
    check_world,
    converged,
    desired_of,
    example,
    gpu_pair,
    gpu_pair_fleet,
    in_process_settings,
    run_daemon,
    start,
    write_settings,
)

from provisiond import app
from provisiond.adapters.specfile import load_desired
from provisiond.core.actions import Action
from provisiond.core.desired import DesiredState
from provisiond.core.observed import VMStatus
from provisiond.runtime.results import ActionResult, Outcome
from provisiond.sim.pve.faults import FaultPlan
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.state import Cluster, VmState
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

CLONE = "/nodes/{node}/qemu/{vmid}/clone"
CONFIG = "/nodes/{node}/qemu/{vmid}/config"
START = "/nodes/{node}/qemu/{vmid}/status/start"
MIGRATE = "/nodes/{node}/qemu/{vmid}/migrate"
SHUTDOWN = "/nodes/{node}/qemu/{vmid}/status/shutdown"


def _mutating(sim: SimHandle) -> dict[tuple[str, str], int]:
    return {k: n for k, n in sim.request_counts().items() if k[0] != "GET" and n}


@pytest.mark.parametrize(
    ("name", "starts_empty"),
    [("cps-gpu", True), ("inferno", True), ("astronomy-lab", False)],
    ids=["cps-gpu", "inferno", "astronomy-lab"],
)
async def test_each_example_converges_and_a_converged_world_makes_no_mutating_call(
    name: str, starts_empty: bool
) -> None:
    """cps-gpu and inferno start with no VMs: each desired VM is cloned exactly once (and moved
    at most once).
    astronomy-lab's VMs all exist (untagged, ``adopt: true``): none is cloned; adopting writes
    the ownership tags, and the over-allocated hosts are rebalanced with one migration per moved
    VM. Either way, the cycle after convergence makes no mutating request."""
    desired = desired_of(name)
    with running_simulator(name, time_scale=TIME_SCALE) as sim:
        before = {v: sim.vm(v) for v in sim.vmids()}
        built = app.build_daemon(in_process_settings(sim, example(name)), follow_up=0.05)
        try:
            for _ in range(10):
                result = await built.reconciler.cycle()
                assert result.error is None, result.error
                if result.converged:
                    break
                if result.report is not None:
                    assert not result.report.failed, [r.detail for r in result.report.failed]
                await asyncio.sleep(0.05)
            assert result.converged, result.plan
            check_world(sim, desired)
            if starts_empty:
                for vm in desired.all_vms():  # never cloned twice, never re-POSTed
                    assert sim.count_requests("POST", CLONE, newid=vm.vmid) == 1, vm.vmid
                    # inferno clones onto the template's host when the target cannot reach the
                    # template's storage, then moves the VM: once
                    assert sim.count_requests("POST", MIGRATE, vmid=vm.vmid) <= 1, vm.vmid
                assert sim.requests("POST", CLONE) == len(desired.all_vms())
            else:
                _assert_adopted_and_rebalanced(sim, desired, before)
            sim.reset_counts()
            again = await built.reconciler.cycle()
            assert again.converged
            assert _mutating(sim) == {}  # the real idempotence check
        finally:
            built.close()


def _assert_adopted_and_rebalanced(
    sim: SimHandle, desired: DesiredState, before: dict[int, VmState | None]
) -> None:
    assert sim.requests("POST", CLONE) == 0  # every VM existed: adopted, never cloned
    assert sorted(sim.vmids()) == sorted(before)
    for vm in desired.all_vms():
        now = sim.vm(vm.vmid)
        assert now is not None
        assert {"provisiond", f"pd-{vm.fleet}"} <= set(str(now.config["tags"]).split(";"))
    moved = [v for v in before if before[v].node != sim.vm(v).node]  # type: ignore[union-attr]
    assert moved, "the over-allocated hosts were not rebalanced"
    assert sim.requests("POST", MIGRATE) == len(moved)  # one migration per moved VM
    policy = desired.fleets[0].policy  # rebalance's goal: every host at or under its thresholds
    for node, mem, cpus in _host_loads(sim):
        total_mem, total_cpus = sim.call(lambda c, n=node: (c.nodes[n].memory, c.nodes[n].cpus))
        mem_cap = total_mem * policy.overcommit.memory
        cpu_cap = total_cpus * policy.overcommit.cpu
        assert mem <= policy.rebalance.memory_threshold * mem_cap, f"{node} memory {mem}"
        assert cpus <= policy.rebalance.cpu_threshold * cpu_cap, f"{node} vCPUs {cpus}"


def _host_loads(sim: SimHandle) -> list[tuple[str, int, int]]:
    """(host, bytes of memory, vCPUs) of the non-template VMs on each host."""

    def loads(c: Cluster) -> list[tuple[str, int, int]]:
        out = []
        for node in c.nodes:
            vms = [v for v in c.vms.values() if v.node == node and not v.is_template]
            mem = sum(int(str(v.config.get("memory", 0))) << 20 for v in vms)
            cpus = sum(int(str(v.config.get("cores", 1))) for v in vms)
            out.append((node, mem, cpus))
        return out

    return sim.call(loads)


@pytest.mark.parametrize(
    ("hold", "label"),
    [
        (("request", "POST", CLONE, "after"), "a: clone POST accepted, answer not yet sent"),
        (("task", "qmclone", 0.5), "b: clone task half done"),
        (("request", "PUT", CONFIG, "before"), "c: between clone and configure"),
        (("request", "POST", START, "before"), "d: between configure and start"),
    ],
    ids=["after-clone-post", "mid-clone-task", "before-configure", "before-start"],
)
def test_kill_9_at_any_point_then_restart_converges_without_duplicates(
    tmp_path: Path, hold: tuple[object, ...], label: str
) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, example("cps-gpu"))
        if hold[0] == "request":
            h = sim.hold_request(str(hold[1]), str(hold[2]), when=hold[3])  # type: ignore[arg-type]
        else:
            h = sim.hold_task(str(hold[1]), at=float(hold[2]))  # type: ignore[arg-type]
        first = run_daemon(tmp_path, cfg)
        try:
            assert h.wait(60), f"{label}: the daemon never reached the hold\n{first.tail()}"
            first.kill9()
        finally:
            if first.popen.poll() is None:
                first.kill9()
            h.release()
        clones_before = sim.requests("POST", CLONE)
        second = run_daemon(tmp_path, cfg)
        try:
            second.wait_for(converged, timeout=60)
        finally:
            second.terminate()
        check_world(sim, desired_of("cps-gpu"))
        # Every VM was cloned exactly once across both lives: nothing re-POSTed after the crash
        # (a re-POST of a VMID that exists would be answered with an error, not 200).
        assert answered(sim, "POST", CLONE) == [200] * len(desired_of("cps-gpu").all_vms())
        assert clones_before >= 1


@pytest.mark.parametrize("release", ["before-restart", "after-restart"])
def test_kill_9_mid_offline_migration_then_restart_finishes_the_gpu_move(
    tmp_path: Path, release: str
) -> None:
    """e: a GPU VM (mapping not live-migratable) evacuated from a host in maintenance moves
    offline — shutdown, offline migrate, start (no Kubernetes configured: no kube steps). The
    daemon is killed while the ``qmigrate`` task is half done; the task goes on server-side.
    Released before the restart, the restarted daemon finds the VM moved and stopped; released
    after, it finds the migration under way and waits for it. Either way it finishes the move
    without a second migrate POST."""
    topology, spec = gpu_pair(tmp_path)
    with running_simulator(topology, time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, spec)
        placed = start(
            tmp_path, "apply", "--config", str(cfg), "--auto-approve", name="apply",
        )  # fmt: skip
        assert placed.popen.wait(60) == 0, placed.tail()
        assert sim.vm(3001).node == "gpu-a"  # type: ignore[union-attr]
        (spec / "fleet.yaml").write_text(gpu_pair_fleet(maintenance="gpu-a"))
        h = sim.hold_task("qmigrate", at=0.5)
        first = run_daemon(tmp_path, cfg)
        try:
            assert h.wait(60), f"the daemon never started the migration\n{first.tail()}"
            first.kill9()
        finally:
            if first.popen.poll() is None:
                first.kill9()
            if release == "before-restart":
                h.release()
        held = sim.vm(3001)
        assert held is not None
        assert held.status == "stopped"  # the shutdown step had completed
        second = run_daemon(tmp_path, cfg)
        try:
            if release == "after-restart":
                plan = second.wait_for(lambda e: e.get("event") == "plan_ready", timeout=60)
                assert plan["waiting"] == 1, plan  # the migration under way: waited for
                assert sim.vm(3001).lock == "migrate"  # type: ignore[union-attr]
                h.release()
            second.wait_for(converged, timeout=60)
        finally:
            h.release()
            second.terminate()
        desired = load_desired([spec])
        check_world(sim, desired)  # exists once, right size, owned, unlocked, running
        vm = sim.vm(3001)
        assert vm is not None
        assert vm.node == "gpu-b"
        assert vm.config["hostpci0"] == "mapping=l40s"
        assert vm.bound == {"hostpci0": "0000:01:00.0"}  # gpu-b's device, bound at start
        assert sim.count_requests("POST", MIGRATE, vmid=3001) == 1  # adopted, never re-POSTed
        assert sim.count_requests("POST", SHUTDOWN, vmid=3001) == 1
        assert sim.requests("POST", CLONE) == 1
        assert sim.requests("DELETE", "/nodes/{node}/qemu/{vmid}") == 0


def test_a_vm_locked_by_a_backup_is_waited_for_never_unlocked(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, example("cps-gpu"))
        # Let the clone of one VM land, then lock it as a vzdump backup would.
        h = sim.hold_request("PUT", CONFIG, when="before")
        daemon = run_daemon(tmp_path, cfg)
        try:
            assert h.wait(60)
            target = next(v for v in sim.vmids() if v != 9000 and sim.vm(v).lock is None)  # type: ignore[union-attr]
            sim.set_lock(target, "backup")
            h.release()
            daemon.wait_for(
                lambda e: e.get("outcome") == "requeued" and e.get("vm") == target, timeout=60
            )
            time.sleep(0.5)
            vm = sim.vm(target)
            assert vm is not None
            assert vm.lock == "backup"  # never unlocked, however often it was retried
            assert "skiplock" not in daemon.log.read_text()
            sim.set_lock(target, None)  # the backup ends
            daemon.wait_for(converged, timeout=60)
        finally:
            daemon.terminate()
        check_world(sim, desired_of("cps-gpu"))


def test_sigterm_during_apply_exits_fast_and_the_next_run_adopts(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, example("cps-gpu"))
        h = sim.hold_task("qmclone", at=0.5)
        apply = start(
            tmp_path,
            "apply",
            "--config",
            str(cfg),
            "--auto-approve",
            name="apply",
        )
        try:
            assert h.wait(60), apply.tail()
            seconds = apply.terminate(timeout=30)
        finally:
            h.release()
        assert seconds < 30
        assert apply.popen.returncode == 1
        assert "in-flight Proxmox tasks continue server-side" in apply.log.read_text()
        daemon = run_daemon(tmp_path, cfg)
        try:
            daemon.wait_for(converged, timeout=60)
        finally:
            daemon.terminate()
        check_world(sim, desired_of("cps-gpu"))
        assert answered(sim, "POST", CLONE) == [200] * len(desired_of("cps-gpu").all_vms())


def test_apply_without_a_tty_refuses_unless_auto_approved(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, example("cps-gpu"))
        refused = start(tmp_path, "apply", "--config", str(cfg), name="apply")
        assert refused.popen.wait(60) == 1
        assert "refusing to apply without a terminal" in refused.log.read_text()
        assert _mutating(sim) == {}
        done = start(
            tmp_path,
            "apply",
            "--config",
            str(cfg),
            "--auto-approve",
            name="apply",
        )
        assert done.popen.wait(60) == 0, done.tail()
        check_world(sim, desired_of("cps-gpu"))


def test_bad_spec_while_running_keeps_the_last_good_one(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.d"
    spec.mkdir()
    shutil.copy(example("cps-gpu") / "fleet.yaml", spec / "fleet.yaml")
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, spec)
        daemon = run_daemon(tmp_path, cfg)
        try:
            daemon.wait_for(converged, timeout=60)
            # An edit that would drop every VM and is broken at line 4.
            (spec / "fleet.yaml").write_text(
                "apiVersion: provisiond.dev/v1alpha1\nkind: Fleet\nmetadata: {name: cps-gpu}\n"
                "spec: {pools: [{name: x, vms: [{name: a, vmid: 12}]}], bogus: 1}\n"
            )
            bad = daemon.wait_for(lambda e: e.get("event") == "spec_invalid", timeout=30)
            assert any(f"{spec / 'fleet.yaml'}:4" in i for i in bad["issues"]), bad["issues"]
            assert bad["using"] == "last good spec"
            # The cycle on the last good spec still runs, and finds nothing to do.
            start_at = daemon.events().index(bad)
            deadline = time.monotonic() + 30
            while not any(converged(e) for e in daemon.events()[start_at:]):
                assert time.monotonic() < deadline, daemon.tail()
                time.sleep(0.05)
        finally:
            daemon.terminate()
        assert sim.requests("DELETE", "/nodes/{node}/qemu/{vmid}") == 0
        check_world(sim, desired_of("cps-gpu"))


def test_demo_converges_and_prints_the_json_summary(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisiond",
            "demo",
            "--exit-when-converged",
            "--output",
            "json",
            "--time-scale",
            str(TIME_SCALE),
            "--timeout",
            "60",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    summary = json.loads(out.stdout)
    assert summary["converged"] is True
    assert summary["seconds"] > 0
    assert summary["blocked"] == []
    assert summary["conflicts"] == []
    # the 4 GPU workers get their pool's labels, the 3 control-plane nodes the spec's taint
    assert summary["actions"] == {
        "clone": 8,
        "configure": 8,
        "grow_disk": 8,
        "start": 8,
        "label": 4,
        "taint": 3,
    }
    nodes = {n["name"]: n for n in summary["nodes"]}
    assert sorted(nodes) == [f"k3s-cp{i}" for i in (1, 2, 3)] + [
        f"k3s-wk-gpu{i}" for i in (1, 2, 3, 4)
    ]  # k3s-maint is not a Kubernetes node (kubernetes.node: false)
    assert nodes["k3s-wk-gpu1"]["vm"] == 1038
    assert nodes["k3s-wk-gpu1"]["labels"]["gpu-model"] == "a100"
    assert "node-role.kubernetes.io/control-plane=true:NoSchedule" in nodes["k3s-cp1"]["taints"]
    gpu = {vm["name"]: vm for vm in summary["vms"]}
    assert gpu["k3s-wk-gpu1"]["gpus"] == ["a100-40g", "a100-40g"]
    assert gpu["k3s-cp1"]["gpus"] == []
    assert {vm["status"] for vm in summary["vms"]} == {"running"}
    assert summary["gpus_by_host"] == {"cit-gpu-01": {"a100-40g": {"claimed": 8, "total": 8}}}


# ------------------------------------------------------------------------------------- faults

RESOURCES = "/cluster/resources"
LOCK_TIMEOUT = "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"


def _attempt_chains(sim: SimHandle) -> Counter[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """For each mutating request (method, path, parameters): the most times it was sent within
    one cycle — between two full observations (``GET /cluster/resources`` without ``type``; the
    executor's fresh reads of one VM ask for ``type=vm``)."""
    best: Counter[tuple[str, str, tuple[tuple[str, str], ...]]] = Counter()
    chain: Counter[tuple[str, str, tuple[tuple[str, str], ...]]] = Counter()
    for r in sim.request_log():
        if r.method == "GET":
            if r.template == RESOURCES and "type" not in r.params:
                chain.clear()  # a new cycle re-observes: the reconciler may ask again
            continue
        key = (r.method, r.path, tuple(sorted(r.params.items())))
        chain[key] += 1
        best[key] = max(best[key], chain[key])
    return best


async def _converge(built: app.Daemon, *, cycles: int = 200, seconds: float = 60.0) -> int:
    """Run cycles until one is converged; returns how many ran."""
    deadline = time.monotonic() + seconds
    for n in range(1, cycles + 1):
        result = await built.reconciler.cycle()
        if result.converged:
            return n
        assert time.monotonic() < deadline, result.plan
        retry = result.report.retry_after if result.report is not None else None
        await asyncio.sleep(min(0.2, retry if retry is not None else 0.02))
    raise AssertionError(f"not converged after {cycles} cycles: {result.plan}")


@pytest.mark.parametrize("name", ["cps-gpu", "astronomy-lab"])
async def test_under_30_percent_failing_requests_the_examples_converge_without_duplicates(
    name: str,
) -> None:
    """Every request (reads included) fails with probability 0.3 — a 500 lock timeout
    (``… - got timeout``), a 503 or a 595, in equal parts — and takes 0 to 50 ms; besides, 5% of
    mutating requests (and the first clone POST) take effect but lose their answer (596 after
    the handler ran: where a blind retry would clone twice). One VM's first 7 start requests
    fail with a 503. Each missing VM's clone takes effect exactly once; every desired VMID exists
    once and no other appears.

    "Retries per call ≤ 5" is asserted per **attempt chain**: the executor makes at most 5
    attempts per call (``ExecutorConfig.max_attempts``), but the next cycle, having re-observed,
    may legitimately send the same request again. So a chain is the run of identical mutating
    requests (same method, path and parameters) between two full observations; the longest
    chain must be ≤ 5. The forced 503s make one chain reach exactly 5 — the limit is met and
    respected, not just never approached — before that VM backs off and starts next time."""
    desired = desired_of(name)
    with running_simulator(name, time_scale=TIME_SCALE) as sim:
        before = set(sim.vmids())
        sim.load_faults(FaultPlan(seed=8))
        sim.inject(status=500, message=LOCK_TIMEOUT, rate=0.1)
        sim.inject(status=503, rate=0.1 / 0.9)  # the rules are drawn in turn: 0.3 in all
        sim.inject(status=595, rate=0.1 / 0.8)
        sim.inject(latency=(0.0, 0.05))
        for method in ("POST", "PUT"):
            sim.inject(method=method, status=596, message="Connection timed out", when="after",
                       rate=0.05)  # fmt: skip
        sim.inject(CLONE, method="POST", status=596, when="after", times=1)  # the first clone
        victim = max(vm.vmid for vm in desired.all_vms())
        sim.inject(START, method="POST", vmid=victim, status=503, times=7)
        if name == "astronomy-lab":
            sim.set_power(victim, "stopped")  # its VMs exist and run: give start something to do
        built = app.build_daemon(in_process_settings(sim, example(name)), follow_up=0.05)
        try:
            await _converge(built)
            faults = sim.fault_counts()
            chains = _attempt_chains(sim)
            cloned = Counter(  # clone POSTs that took effect: answered, or answer lost after
                r.params["newid"] for r in sim.request_log("POST", CLONE) if r.status in (200, 596)
            )
            victim_starts = sim.count_requests("POST", START, vmid=victim)
            sim.clear_faults()
            sim.reset_counts()
            again = await built.reconciler.cycle()
            assert again.converged, again.plan
            assert _mutating(sim) == {}
        finally:
            built.close()
        check_world(sim, desired)  # each desired VMID exists once, owned, unlocked, running
        assert set(sim.vmids()) == before | {vm.vmid for vm in desired.all_vms()}
        missing = {str(vm.vmid) for vm in desired.all_vms()} - {str(v) for v in before}
        assert cloned == dict.fromkeys(missing, 1)  # each missing VM cloned once, never re-POSTed
        errors = sum(n for (_m, _t, kind), n in faults.items() if kind.startswith("error"))
        assert errors >= 20, faults  # the faults did bite
        longest = max(chains.values())
        assert longest <= 5, [k for k, n in chains.items() if n == longest]
        starts = [
            n for (m, path, _p), n in chains.items() if path.endswith(f"/{victim}/status/start")
        ]
        assert max(starts) == 5  # the forced 503s: five attempts, then the VM backed off
        assert victim_starts >= 8  # and it was started in a later cycle (7 failed, 1 worked)
        assert sum(1 for n in chains.values() if n > 1) > 1  # other calls were retried too


async def test_a_host_offline_clones_nothing_for_its_vms_and_converges_when_it_returns() -> None:
    """astronomy-lab with node02 offline before the daemon starts: node02's VMs are listed
    ``unknown`` — unknown, not missing — so nothing is cloned for them and nothing is sent to
    node02; the VMs on the other hosts are adopted and the cycle converges (a host offline is a
    state of the cluster, not a failed read). node02 back: its VMs are adopted and the
    over-allocated node02 is rebalanced."""
    name = "astronomy-lab"
    desired = desired_of(name)
    with running_simulator(name, time_scale=TIME_SCALE) as sim:
        vmids = set(sim.vmids())
        on_node02 = {v for v in vmids if sim.vm(v).node == "node02"}  # type: ignore[union-attr]
        sim.host_offline("node02")
        built = app.build_daemon(in_process_settings(sim, example(name)), follow_up=0.05)
        try:
            cycles = await _converge(built, cycles=20)
            last = built.reconciler.last
            assert last is not None
            assert last.observed is not None
            assert last.observed.unobserved.offline_hosts == ("node02",)
            unknown = {v.vmid for v in last.observed.vms if v.status is VMStatus.UNKNOWN}
            assert unknown == on_node02
            assert sim.requests("POST", CLONE) == 0  # unknown, not missing
            to_node02 = [
                r
                for r in sim.request_log()
                if r.method != "GET" and r.params.get("node") == "node02"
            ]
            assert to_node02 == []
            assert sim.count_requests("POST", MIGRATE, target="node02") == 0
            for vmid in vmids - on_node02 - {9000}:
                assert "provisiond" in str(sim.vm(vmid).config.get("tags")), vmid  # type: ignore[union-attr]
            for vmid in on_node02:
                assert "tags" not in sim.vm(vmid).config  # type: ignore[union-attr]
            assert cycles <= 5
            assert last.plan is not None
            reported = {b.vmid for b in last.plan.blocked if b.code == "unknown_status"}
            assert reported == on_node02  # reported, not acted on
            sim.host_online("node02")
            await _converge(built, cycles=20)
        finally:
            built.close()
        check_world(sim, desired)
        assert sim.requests("POST", CLONE) == 0
        assert set(sim.vmids()) == vmids
        assert any(sim.vm(v).node != "node02" for v in on_node02)  # type: ignore[union-attr]


class _Starts:
    """Action listener: when each action started, and its failures."""

    def __init__(self) -> None:
        self.started: dict[str, list[float]] = {}
        self.failed: Counter[str] = Counter()

    def plan_started(self, plan: object) -> None:
        pass

    def action_started(self, action: Action) -> None:
        self.started.setdefault(action.id, []).append(time.monotonic())

    def action_finished(self, result: ActionResult) -> None:
        if result.outcome is Outcome.FAILED:
            self.failed[result.action.id] += 1


async def test_a_permanent_error_on_one_vm_backs_it_off_while_the_others_converge() -> None:
    """cps-gpu where every start task of one VM fails (``start failed: QEMU exited with code
    1``, no effect): that VM's start is retried by later cycles with growing spacing — the
    per-object backoff (base 0.2 s here, doubling) — while every other VM is cloned, configured
    and started, and the daemon keeps cycling."""
    name = "cps-gpu"
    desired = desired_of(name)
    victim = 1040
    with running_simulator(name, time_scale=TIME_SCALE) as sim:
        sim.fail_tasks("qmstart", "start failed: QEMU exited with code 1", vmid=victim)
        starts = _Starts()
        built = app.build_daemon(
            in_process_settings(sim, example(name)),
            follow_up=0.05,
            action_listener=starts,
        )
        stop = asyncio.Event()
        loop = asyncio.create_task(built.reconciler.run(stop))
        try:
            deadline = time.monotonic() + 30
            while starts.failed[f"start:{victim}"] < 4:
                assert time.monotonic() < deadline, starts.started
                assert not loop.done()
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(loop, 30)
            built.close()
        base = built.executor.config.backoff_base
        at = starts.started[f"start:{victim}"][:4]
        gaps = [b - a for a, b in itertools.pairwise(at)]
        # Each retry waits at least its doubled backoff (a gap can be longer: the cycle that
        # retries is also cloning and starting the other VMs, more so on a loaded machine, so
        # the observed gaps themselves need not be sorted — their floors are).
        for n, gap in enumerate(gaps):
            assert gap >= 0.9 * base * 2**n, gaps  # never before its backoff ran out
        assert built.executor.backoff.failures(victim) >= 3
        others = [vm.vmid for vm in desired.all_vms() if vm.vmid != victim]
        assert all(built.executor.backoff.failures(v) == 0 for v in others)
        assert all(len(starts.started.get(f"start:{v}", [])) == 1 for v in others)
        check_world(sim, desired, stopped={victim})  # the others converged; it is left stopped
        assert sim.task_fault_counts()["qmstart"] >= 4  # only the victim's start tasks failed
        assert starts.failed.keys() == {f"start:{victim}"}


def test_sighup_reloads_settings_into_read_only_which_plans_but_never_acts(
    tmp_path: Path,
) -> None:
    import json
    import signal

    from provisiond.sim.pve.testing import proxmox_client

    spec = tmp_path / "fleet.d"
    spec.mkdir()
    shutil.copy(example("cps-gpu") / "fleet.yaml", spec / "fleet.yaml")
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        cfg = write_settings(tmp_path, sim, spec)
        daemon = run_daemon(tmp_path, cfg)
        try:
            daemon.wait_for(converged, timeout=60)
            settings = json.loads(cfg.read_text())
            settings["daemon"]["read_only"] = True
            cfg.write_text(json.dumps(settings))
            daemon.popen.send_signal(signal.SIGHUP)
            reloaded = daemon.wait_for(lambda e: e.get("event") == "settings_reloaded", timeout=30)
            assert reloaded["read_only"] is True
            # Drift by hand: a VM destroyed. Read-only plans its clone, and acts on nothing.
            api = proxmox_client(sim)
            api.nodes("cit-gpu-01").qemu(1035).status.stop.post()
            deadline = time.monotonic() + 10
            while sim.running_tasks() and time.monotonic() < deadline:
                time.sleep(0.01)
            api.nodes("cit-gpu-01").qemu(1035).delete()
            while sim.running_tasks() and time.monotonic() < deadline:
                time.sleep(0.01)
            sim.reset_counts()
            seen = len(daemon.events())
            daemon.popen.send_signal(signal.SIGHUP)  # a reload also triggers a cycle
            daemon.wait_for(
                lambda e: (
                    e.get("event") == "plan_ready"
                    and e.get("actions", 0) > 0
                    and daemon.events().index(e) >= seen
                ),
                timeout=30,
            )
            daemon.wait_for(
                lambda e: (
                    e.get("event") == "reconcile_finished" and daemon.events().index(e) >= seen
                ),
                timeout=30,
            )
        finally:
            daemon.terminate()
        mutating = {k: n for k, n in sim.request_counts().items() if k[0] != "GET" and n}
        assert mutating == {}
        assert sim.vm(1035) is None
        secret = sim.token.rpartition("=")[2]
        assert secret not in daemon.log.read_text()  # redaction survives the reload
