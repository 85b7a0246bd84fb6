"""Fault injection, observed from the real proxmoxer client: errors with PVE's envelope and
reason phrase, latency, hangs past the client timeout, failing tasks, hosts going offline and
coming back, the faults file (``sim serve --faults``), seeded reproducibility, and the request
log that lets tests count retries per call."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from migrate_lab import lab
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks
from serve_process import INFERNO, serve, serve_to_exit

from provisiond.sim.pve.faults import FaultPlan, RequestFault
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration

Q = "/nodes/{node}/qemu/{vmid}"


@pytest.fixture
def sim() -> Iterator[Any]:
    with running_simulator(lab(), time_scale=0.002) as handle:
        yield handle


def fails(call: Any, **kw: Any) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(**kw)
    return exc.value


def test_error_rules_answer_with_pve_envelope_and_count(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.inject(f"{Q}/*", method="POST", status=500, message="got timeout", times=2)
    sim.inject("/cluster/resources", status=503, times=1)
    sim.inject("/nodes/{node}/tasks/*", status=596, message="Connection timed out", times=1)
    for _ in range(2):
        e = fails(api.nodes("pve1").qemu(100).status.stop.post)
        assert (e.status_code, e.content) == (500, "got timeout")
    assert ":qmstop:" in api.nodes("pve1").qemu(100).status.stop.post()  # budget spent
    e = fails(api.cluster.resources.get)
    assert (e.status_code, e.content) == (503, "Service Unavailable")
    assert api.cluster.resources.get()
    e = fails(api.nodes("pve1").tasks("x").status.get)
    assert (e.status_code, e.content) == (596, "Connection timed out")
    stop = ("POST", f"{Q}/status/stop")
    assert sim.fault_counts() == {
        (*stop, "error 500"): 2,
        ("GET", "/cluster/resources", "error 503"): 1,
        ("GET", "/nodes/{node}/tasks/{upid}/status", "error 596"): 1,
    }
    assert sim.requests(*stop) == 3
    # the VM was not stopped by the refused requests: "before" faults have no effect
    assert [r.status for r in sim.request_log(*stop)] == [500, 500, 200]


def test_error_rules_can_target_one_vm(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.inject(f"{Q}/config", method="PUT", vmid=100, status=500, message="only root can set")
    e = fails(api.nodes("pve1").qemu(100).config.put, cores=2)
    assert (e.status_code, e.content) == (500, "only root can set")
    api.nodes("pve1").qemu(102).config.put(cores=2)  # another VM: untouched by the rule
    assert sim.fault_counts() == {("PUT", f"{Q}/config", "error 500"): 1}
    assert [r.status for r in sim.request_log("PUT", f"{Q}/config")] == [500, 200]


def test_after_fault_keeps_the_effect_and_retries_are_counted(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.inject(f"{Q}/clone", method="POST", status=500, message="proxy timeout", when="after")
    e = fails(api.nodes("pve1").qemu(100).clone.post, newid=200, name="c1")
    assert e.content == "proxy timeout"
    e = fails(api.nodes("pve1").qemu(100).clone.post, newid=200, name="c1")  # a client retry
    assert e.content in {"unable to create VM 200: config file already exists", "proxy timeout"}
    assert sim.count_requests("POST", "/nodes/pve1/qemu/100/clone", newid=200) == 2
    assert sim.count_requests("POST", f"{Q}/clone", newid=201) == 0
    assert sim.max_repeats("POST", f"{Q}/clone") == 2
    sim.reset_counts()
    assert sim.request_log() == []


def test_latency_fixed_and_random(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.inject("/version", latency=0.3, times=1)
    began = time.monotonic()
    api.version.get()
    assert time.monotonic() - began >= 0.3
    sim.inject("/version", latency=(0.1, 0.2), times=1)
    began = time.monotonic()
    api.version.get()
    waited = time.monotonic() - began
    # the drawn latency, not the wall clock (a loaded machine only adds to it), is the contract
    fixed, drawn = [r.latency for r in sim.request_log("GET", "/version")]
    assert fixed == 0.3
    assert 0.1 <= drawn <= 0.2
    assert waited >= drawn
    assert sim.fault_counts() == {("GET", "/version", "latency"): 2}


def test_hang_past_the_client_timeout(sim: Any) -> None:
    api = proxmox_client(sim, timeout=0.3)
    sim.inject("/nodes/{node}/qemu/{vmid}/status/start", hang=True, when="after", times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.nodes("pve1").qemu(102).status.start.post()
    sim.release_hangs()
    # the start did happen: the answer was what hung
    assert any(t["type"] == "qmstart" and t["id"] == "102" for t in sim.tasks())
    assert sim.fault_counts() == {("POST", f"{Q}/status/start", "hang"): 1}


def test_failing_tasks_rate_and_next_n(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.fail_tasks("qmclone", "clone failed: got timeout", times=1)
    upid = api.nodes("pve1").qemu(100).clone.post(newid=300)
    status = Tasks.blocking_status(api, upid, polling_interval=0.01)
    assert status["exitstatus"] == "clone failed: got timeout"
    assert sim.task_log(upid)[-1] == "TASK ERROR: clone failed: got timeout"
    assert sim.vm(300) is None  # a failed task has no effect
    upid = api.nodes("pve1").qemu(100).clone.post(newid=301)
    assert Tasks.blocking_status(api, upid, polling_interval=0.01)["exitstatus"] == "OK"
    assert sim.task_fault_counts() == {"qmclone": 1}
    sim.fail_tasks("qmst*", "boom", vmid=102, rate=0.0)
    upid = api.nodes("pve1").qemu(102).status.start.post()
    assert Tasks.blocking_status(api, upid, polling_interval=0.01)["exitstatus"] == "OK"


def test_seeded_rate_is_reproducible() -> None:
    def outcomes(seed: int) -> list[int]:
        plan = FaultPlan(seed=seed, requests=(RequestFault(path="/version", rate=0.5, status=500),))
        with running_simulator(lab(), time_scale=0.002) as sim:
            sim.load_faults(plan)
            api = proxmox_client(sim)
            out = []
            for _ in range(20):
                try:
                    api.version.get()
                    out.append(200)
                except ResourceException as exc:
                    out.append(exc.status_code)
            return out

    first = outcomes(7)
    assert first == outcomes(7)
    assert 0 < first.count(500) < 20
    assert first != outcomes(8)


def test_host_offline_and_back(sim: Any) -> None:
    api = proxmox_client(sim)
    sim.host_offline("pve1")
    e = fails(api.nodes("pve1").qemu(100).status.current.get)
    assert (e.status_code, e.content) == (595, "No route to host")
    e = fails(api.nodes("pve1").status.get)
    assert e.status_code == 595
    nodes = {n["node"]: n["status"] for n in api.nodes.get()}
    assert nodes == {"pve1": "offline", "pve2": "online", "pve3": "online"}
    status = {i["name"]: i["online"] for i in api.cluster.status.get() if i["type"] == "node"}
    assert status["pve1"] == 0
    vms = api.cluster.resources.get(type="vm")
    assert {v["status"] for v in vms if v["node"] == "pve1"} == {"unknown"}
    assert sim.fault_counts()[("GET", f"{Q}/status/current", "offline")] == 1
    sim.host_online("pve1")
    assert api.nodes("pve1").qemu(100).status.current.get()["status"] == "running"
    sim.host_offline("pve1", reason="Connection refused")
    assert fails(api.nodes("pve1").qemu.get).content == "Connection refused"
    sim.host_online("pve1", power_loss=True)
    assert api.nodes("pve1").qemu(100).status.current.get()["status"] == "stopped"


def test_faults_file_for_sim_serve(tmp_path: Path) -> None:
    topology = tmp_path / "t.yaml"
    from provisiond.sim.pve.snapshot import to_yaml

    topology.write_text(to_yaml(lab()))
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        "seed: 3\n"
        "requests:\n"
        "  - {path: /version, status: 503, times: 1}\n"
        "  - {path: '/nodes/{node}/qemu', method: GET, latency: [0.01, 0.02]}\n"
        "tasks:\n"
        "  - {type: qmstart, exitstatus: 'start failed: boom', times: 1}\n"
        "events:\n"
        "  - {host: pve3, state: offline, after: 0}\n"
    )
    with serve(
        topology, "--time-scale", "0.002", "--faults", str(faults), stop=signal.SIGINT
    ) as served:
        api = served.api()
        assert fails(api.version.get).status_code == 503
        assert api.version.get()["release"] == "8.4"
        assert fails(api.nodes("pve3").qemu.get).status_code == 595
        upid = api.nodes("pve1").qemu(102).status.start.post()
        assert Tasks.blocking_status(api, upid, polling_interval=0.01)["exitstatus"] == (
            "start failed: boom"
        )
    assert served.proc.returncode == 0


def test_bad_faults_file_exits_1(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("requests:\n  - {path: /version, rate: 2}\n")
    out = serve_to_exit(INFERNO, "--faults", str(faults))
    assert out.returncode == 1
    assert "faults.yaml" in out.stderr
