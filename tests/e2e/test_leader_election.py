"""Two real ``provisiond run`` processes elect a leader on the Kubernetes simulator's Lease; the
Proxmox simulator (in this process) logs who sent every request, since each daemon has its own
API token. Exactly one acts; kill -9, SIGTERM, SIGSTOP/SIGCONT and a failing Lease API hand
over as DESIGN §9 and issue 17 say.

Durations are scaled down so the file runs in well under a minute: lease 3 s, renew deadline
2 s, retry 0.5 s (the defaults are 15/10/2; the bounds below are stated in those terms:
failover ≤ lease + retry jitter + a cycle).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import EXECUTOR, Proc, converged, example, metrics_url, run_daemon
from prometheus_client.parser import text_string_to_metric_families

from metrics_support import get
from provisiond.adapters.specfile import load_desired
from provisiond.sim.kube import KubeSim, Membership, start_linked
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

pytestmark = pytest.mark.e2e

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
START = "/nodes/{node}/qemu/{vmid}/status/start"


@dataclass
class World:
    pve: SimHandle
    kube: KubeSim
    tmp: Path

    def mutating(self, since: int = 0) -> list[tuple[str, str, str]]:
        """(authid, method, template) of every mutating request from log index ``since``."""
        return [
            (r.authid, r.method, r.template)
            for r in self.pve.request_log()[since:]
            if r.method != "GET" and r.template != "/access/ticket"
        ]

    def log_size(self) -> int:
        return len(self.pve.request_log())

    def holder(self) -> str:
        lease = self.kube.get("leases", "provisiond", "default") or {}
        return str((lease.get("spec") or {}).get("holderIdentity") or "")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # The Kubernetes simulator is linked to the Proxmox one: the daemons' kubeconfig serves the
    # Lease and the Nodes of the VMs they start (cps-gpu's pools are Kubernetes nodes; without
    # them joining, every running VM would wait for its node).
    with running_simulator("cps-gpu", time_scale=0.01) as pve:
        desired = load_desired([EXAMPLES / "cps-gpu"])
        kube = start_linked(
            pve, membership=Membership.from_desired(desired), node_delay=0.1, ready_delay=0.1
        )
        try:
            yield World(pve, kube, tmp_path)
        finally:
            kube.stop()


@dataclass
class Daemon:
    name: str
    token: str  # the Proxmox API token id it authenticates as
    proc: Proc

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.proc.events() if e.get("event") == event]

    def wait(self, event: str, timeout: float = 20.0, **fields: object) -> dict[str, Any]:
        return self.proc.wait_for(
            lambda e: e.get("event") == event and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )


def daemon(world: World, name: str, *, interval: float = 30.0, kube: bool = True) -> Daemon:
    full = world.pve.add_token("root@pam", name)
    tokenid, _, secret = full.rpartition("=")
    (world.tmp / f"{name}.secret").write_text(secret)
    settings: dict[str, Any] = {
        "proxmox": {
            "url": world.pve.url,
            "token_id": tokenid,
            "token_secret_file": str(world.tmp / f"{name}.secret"),
            "ca_bundle": world.pve.ca_path,
        },
        "spec": {"paths": [str(example("cps-gpu"))]},
        "daemon": {"interval": interval, "state_dir": str(world.tmp / "state")},
        "executor": EXECUTOR,
        "log": {"format": "json", "level": "info"},
        "metrics": {"bind": "127.0.0.1:0"},  # two daemons on one machine: a free port each
    }
    if kube:
        settings["kubernetes"] = {
            "kubeconfig": str(world.kube.write_kubeconfig(world.tmp / "kubeconfig"))
        }
        settings["leader_election"] = {
            "lease_duration": LEASE,
            "renew_deadline": RENEW,
            "retry_period": RETRY,
            "release_timeout": 2.0,
        }
    cfg = world.tmp / f"{name}.json"
    cfg.write_text(json.dumps(settings))
    proc = run_daemon(world.tmp, cfg, name=name, env={"POD_NAME": name})
    return Daemon(name, tokenid, proc)


def leader_of(*daemons: Daemon, timeout: float = 20.0) -> tuple[Daemon, list[Daemon]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = [d for d in daemons if d.events("leader_acquired")]
        if leading:
            assert len(leading) == 1, [d.name for d in leading]
            return leading[0], [d for d in daemons if d is not leading[0]]
        time.sleep(0.05)
    raise AssertionError("nobody acquired the lease:\n" + daemons[0].proc.tail())


def wait_until(pred: Any, timeout: float, what: str) -> float:
    """Poll ``pred`` until true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pred():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def running_vm(world: World) -> int:
    return next(v for v in world.pve.vmids() if (vm := world.pve.vm(v)) and vm.status == "running")


def started_by(world: World, token: str, since: int) -> bool:
    return (token, "POST", START) in world.mutating(since)


def leader_gauge(d: Daemon) -> float | None:
    """``leader_election_master_status{name="provisiond"}`` on the daemon's /metrics."""
    text = get(f"{metrics_url(d.proc)}/metrics")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "leader_election_master_status":
                assert sample.labels == {"name": "provisiond"}
                return sample.value
    return None


def stop_all(*daemons: Daemon) -> None:
    for d in daemons:
        if d.proc.popen.poll() is None:
            d.proc.popen.send_signal(signal.SIGCONT)
            d.proc.kill9()


def test_one_acts_kill9_and_sigterm_fail_over(world: World) -> None:
    a, b = daemon(world, "replica-a"), daemon(world, "replica-b")
    c: Daemon | None = None
    try:
        leader, (standby,) = leader_of(a, b)
        leader.proc.wait_for(converged, 60)
        # Exactly one identity sent mutating requests over the whole converge.
        assert {who for who, _, _ in world.mutating()} == {leader.token}
        standby.wait("plan_ready", role="standby")
        assert world.holder() == leader.name
        assert (leader_gauge(leader), leader_gauge(standby)) == (1.0, 0.0)
        assert get(f"{metrics_url(standby.proc)}/readyz")[0] == 200  # a warm standby is ready

        # kill -9 of the leader: the standby acts within lease + retry (+ one cycle).
        vmid = running_vm(world)
        mark = world.log_size()
        leader.proc.kill9()
        world.pve.set_power(vmid, "stopped")
        took = wait_until(lambda: started_by(world, standby.token, mark), 15, "the standby")
        assert took <= LEASE + 1.2 * RETRY + 2.0, took
        assert world.holder() == standby.name

        # SIGTERM of the (new) leader: released, a third replica takes over within 5 s.
        # A short interval: the VM is stopped after c's first cycle as leader (the one its
        # acquisition triggers), so c sees it at its next cycle, not 30 s later.
        c = daemon(world, "replica-c", interval=0.5)
        c.wait("leader_standby", holder=standby.name)
        took_exit = standby.proc.terminate(30)
        assert took_exit < 30
        released = standby.wait("leader_released", 1)
        assert released["identity"] == standby.name
        handover = wait_until(lambda: c.events("leader_acquired"), 5, "replica-c to lead")
        assert handover + took_exit <= 5.0, (handover, took_exit)
        vmid = running_vm(world)
        mark = world.log_size()
        world.pve.set_power(vmid, "stopped")
        wait_until(lambda: started_by(world, c.token, mark), 10, "replica-c to act")
        assert {who for who, _, _ in world.mutating(mark)} == {c.token}
    finally:
        stop_all(a, b, *([c] if c else []))


def test_a_paused_leader_sends_nothing_after_waking_then_stands_by(world: World) -> None:
    a, b = daemon(world, "pause-a", interval=0.5), daemon(world, "pause-b", interval=0.5)
    try:
        leader, (standby,) = leader_of(a, b)
        leader.proc.wait_for(converged, 60)
        leader.proc.popen.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        vmid = running_vm(world)
        mark = world.log_size()
        world.pve.set_power(vmid, "stopped")
        wait_until(lambda: started_by(world, standby.token, mark), 15, "the standby to act")
        assert time.monotonic() - stopped_at > LEASE
        # Work for anyone, then the old leader wakes: its deadline passed while it slept.
        vmid = running_vm(world)
        woke = world.log_size()
        world.pve.set_power(vmid, "stopped")
        leader.proc.popen.send_signal(signal.SIGCONT)
        lost = leader.wait("leader_lost", 10)
        assert "no successful renew" in lost["reason"] or "held by" in lost["reason"]
        leader.wait("plan_ready", 10, role="standby")
        wait_until(lambda: started_by(world, standby.token, woke), 10, "the new leader to act")
        time.sleep(1.0)  # several of the woken daemon's cycles (interval 0.5 s)
        assert leader.token not in {who for who, _, _ in world.mutating(woke)}
        assert not leader.events("leader_acquired")[1:]  # it did not lead again
    finally:
        stop_all(a, b)


def test_a_failing_lease_api_makes_the_leader_step_down_at_its_deadline(world: World) -> None:
    a, b = daemon(world, "fail-a", interval=0.5), daemon(world, "fail-b", interval=0.5)
    try:
        leader, (standby,) = leader_of(a, b)
        leader.proc.wait_for(converged, 60)
        world.kube.inject("leases.coordination.k8s.io", verb="update", status=500)
        failing_since = time.monotonic()
        leader.wait("leader_lost", RENEW + 2 * RETRY + 2)
        assert time.monotonic() - failing_since >= RENEW - RETRY  # not before its deadline
        # Nobody may act now: the old leader is fenced, the standby cannot write the Lease.
        vmid = running_vm(world)
        mark = world.log_size()
        world.pve.set_power(vmid, "stopped")
        time.sleep(1.5)
        assert world.mutating(mark) == []
        world.kube.clear_faults()
        wait_until(
            lambda: started_by(world, leader.token, mark) or started_by(world, standby.token, mark),
            LEASE + 5,
            "a leader to act again",
        )
        assert len({who for who, _, _ in world.mutating(mark)}) == 1
    finally:
        stop_all(a, b)


def test_without_kubernetes_a_second_daemon_on_the_machine_exits_1(world: World) -> None:
    first = daemon(world, "solo-a", kube=False)
    second: Daemon | None = None
    try:
        first.wait("plan_ready")
        second = daemon(world, "solo-b", kube=False)
        assert second.proc.popen.wait(20) == 1
        lines = second.proc.log.read_text().strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: another provisiond is already running on this machine")
        assert "provisiond.lock" in lines[0]
        assert first.proc.popen.poll() is None
        assert not first.events("leader_election_started")
    finally:
        stop_all(first, *([second] if second else []))
