"""The CLI with Kubernetes configured, as a process, with the real proxmoxer and ``kubernetes``
clients, against the Proxmox simulator and the Kubernetes simulator (its fault seam injects 503s
and latency). One VM, running, whose node has joined; the spec wants a label on it.

- ``plan`` with Kubernetes unreadable (the node list answers 503) says so: the node actions of
  every Kubernetes VM wait, "not observed: kubernetes nodes", and a warning line names it —
  instead of "No changes" for a cluster whose nodes it could not see.
- ``run`` stopped (SIGTERM) while a node action is in flight: the action finishes and its Event
  is written — the Kubernetes client is closed only after the reconciler has returned.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import run_daemon, write_settings

from cli_support import provisiond
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import running_kube
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

TOPOLOGY = """\
apiVersion: provisiond.dev/v1alpha1
kind: Topology
metadata: {name: nodes}
spec:
  hosts:
    - {name: pve1, cpus: 16, memory: 64GiB}
  storages:
    - {name: local-lvm, type: lvmthin, size: 2TB}
  templates:
    - name: tmpl
      vmid: 9000
      host: pve1
      storage: local-lvm
      bridge: vmbr0
      disks: [{slot: scsi0, size: 8G}]
  vms:
    - name: k8s-w1
      vmid: 101
      host: pve1
      status: running
      cores: 2
      memory: 4GiB
      storage: local-lvm
      disks: [{slot: scsi0, size: 8G}]
      nets: [{slot: net0, bridge: vmbr0}]
      tags: [provisiond, pd-nodes]
"""
FLEET = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: nodes}
spec:
  defaults: {template: tmpl, storage: local-lvm, bridge: vmbr0, cores: 2, memory: 4GiB}
  pools:
    - name: workers
      kubernetes: {labels: {role: worker}}
      vms: [{name: k8s-w1, vmid: 101}]
"""
REASON = "not observed: kubernetes nodes (labels, taints and uncordon of node k8s-w1 wait)"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[KubeSim, Path]]:
    """The simulators with VM 101 running and its node registered (the same machine)."""
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    with running_simulator(tmp_path / "topology.yaml") as sim, running_kube() as kube:
        cfg = write_settings(tmp_path, sim, fleet)
        settings = json.loads(cfg.read_text())
        settings["kubernetes"] = {"kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubecfg"))}
        # the single-instance lock instead: a stopping leader's fence refuses new writes
        settings["leader_election"] = {"enabled": False}
        cfg.write_text(json.dumps(settings))
        vm = sim.vm(101)
        assert vm is not None
        machine = str(vm.config["smbios1"]).removeprefix("uuid=")
        kube.add_node("k8s-w1", system_uuid=machine, ready=True)
        yield kube, cfg


def plan(cfg: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return provisiond("plan", "--config", str(cfg), *flags)


def test_plan_says_kubernetes_was_not_observed(world: tuple[KubeSim, Path]) -> None:
    kube, cfg = world
    seen = plan(cfg)
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "~ node k8s-w1 labels +role=worker" in seen.stdout  # reachable: the label is planned
    assert "not observed" not in seen.stdout

    kube.inject("nodes", verb="list", status=503)
    text = plan(cfg)
    assert text.returncode == 0, text.stdout + text.stderr
    lines = [line.strip() for line in text.stdout.splitlines()]
    assert (
        "warning: could not read the Kubernetes nodes: their labels, taints and uncordons wait, "
        "and no Kubernetes VM is disrupted (not observed: kubernetes nodes)"
    ) in lines
    assert any(REASON in line for line in lines), text.stdout
    assert "labels +role=worker" not in text.stdout

    out = plan(cfg, "--output", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [(w["vmid"], w["reason"]) for w in data["waiting"]] == [(101, REASON)]
    assert any("could not read the Kubernetes nodes" in w for w in data["warnings"])


def _events(kube: KubeSim, node: str) -> list[str]:
    return [
        e["reason"]
        for e in kube.objects("events", "default")
        if e["involvedObject"]["name"] == node
    ]


def test_run_stopped_during_a_node_action_still_writes_its_event(
    world: tuple[KubeSim, Path], tmp_path: Path
) -> None:
    kube, cfg = world
    kube.inject("nodes", verb="patch", latency=1.5, times=1)
    daemon = run_daemon(tmp_path, cfg)
    try:
        deadline = time.monotonic() + 60
        while not kube.fault_counts().get(("patch", "nodes", "latency")):
            assert time.monotonic() < deadline, daemon.tail()
            assert daemon.popen.poll() is None, daemon.tail()
            time.sleep(0.02)
    finally:  # the label patch is in flight: stop now
        seconds = daemon.terminate(timeout=30)
    assert daemon.popen.returncode == 0, daemon.tail()
    assert seconds < 30
    node = kube.get("nodes", "k8s-w1")
    assert node is not None
    assert node["metadata"]["labels"]["role"] == "worker"
    assert "ProvisiondLabels" in _events(kube, "k8s-w1"), daemon.tail()
    log = daemon.log.read_text()
    assert "kube_event_failed" not in log
    assert "Connector is closed" not in log
    assert "Session is closed" not in log  # what the patch itself met before the fix
