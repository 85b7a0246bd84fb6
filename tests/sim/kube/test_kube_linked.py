"""The linked world: VMs started through the Proxmox API (real proxmoxer) join the Kubernetes
simulator as Nodes (real kubernetes client): registration, Ready, the workloads, NotReady on
stop, the same Node after migration, and evictions the ReplicaSet stand-in makes good for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException
from proxmoxer.tools import Tasks

from provisiond.core.topology import Topology
from provisiond.sim.kube import KubeSim, Membership, start_linked
from provisiond.sim.kube.testing import api_client
from provisiond.sim.pve.testing import proxmox_client, running_simulator
from tools_support import tool

pytestmark = pytest.mark.integration

GPU = {"id": "10de:20f1", "name": "GA100 [A100 PCIe 40GB]", "iommuGroup": 1}


def _vm(vmid: int, name: str, host: str = "pve1", **kw: Any) -> dict[str, Any]:
    return {
        "vmid": vmid,
        "name": name,
        "host": host,
        "status": "stopped",
        "storage": "shared",
        "cores": 8,
        "memory": "16GiB",
        "disks": [{"slot": "scsi0", "size": "8G"}],
        "config": {"ipconfig0": f"ip=10.21.0.{vmid - 100}/16,gw=10.21.0.1"},
        **kw,
    }


TOPOLOGY = {
    "apiVersion": "provisiond.dev/v1alpha1",
    "kind": "Topology",
    "metadata": {"name": "linked"},
    "spec": {
        "hosts": [
            {
                "name": h,
                "cpus": 64,
                "memory": "256GiB",
                "pciDevices": [{"address": "0000:01:00.0", **GPU}],
            }
            for h in ("pve1", "pve2")
        ],
        "storages": [{"name": "shared", "type": "nfs", "shared": True, "size": "10TiB"}],
        "pciMappings": [
            {
                "id": "a100",
                "map": [
                    {"host": "pve1", "path": "0000:01:00.0"},
                    {"host": "pve2", "path": "0000:01:00.0"},
                ],
            }
        ],
        "vms": [
            _vm(135, "k3s-cp1"),
            _vm(138, "gpu-wk1", hostpci=[{"slot": "hostpci0", "mapping": "a100"}]),
            _vm(139, "gpu-wk2", "pve2", hostpci=[{"slot": "hostpci0", "mapping": "a100"}]),
            _vm(140, "cpu-wk1"),
            _vm(141, "maint"),
        ],
    },
}


@dataclass
class World:
    pve: Any  # proxmoxer
    pve_sim: Any  # SimHandle
    kube: KubeSim
    core: Any  # CoreV1Api
    policy: Any  # PolicyV1Api

    def task(self, node: str, upid: str) -> None:
        status = Tasks.blocking_status(self.pve, upid, timeout=30, polling_interval=0.02)
        assert status["exitstatus"] == "OK", status

    def start(self, vmid: int) -> None:
        node = self.host_of(vmid)
        self.task(node, self.pve.nodes(node).qemu(vmid).status.start.post())

    def stop(self, vmid: int) -> None:
        node = self.host_of(vmid)
        self.task(node, self.pve.nodes(node).qemu(vmid).status.stop.post())

    def host_of(self, vmid: int) -> str:
        vm = self.pve_sim.vm(vmid)
        assert vm is not None
        return str(vm.node)

    def node(self, name: str) -> Any:
        return self.core.read_node(name)


def ready(node: Any) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ApiException as exc:
            if exc.status != 404:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.05)


@pytest.fixture
def world() -> Iterator[World]:
    with running_simulator(Topology.model_validate(TOPOLOGY), time_scale=0.002) as pve_sim:
        kube = start_linked(
            pve_sim,
            node_delay=0.2,
            ready_delay=0.3,
            pod_delay=0.1,
            membership=Membership(skip=frozenset({"maint"}), node_names={"cpu-wk1": "worker-1"}),
        )
        try:
            with api_client(kube) as api:
                yield World(
                    proxmox_client(pve_sim),
                    pve_sim,
                    kube,
                    client.CoreV1Api(api),
                    client.PolicyV1Api(api),
                )
        finally:
            kube.stop()


def test_started_vm_joins_and_turns_ready(world: World) -> None:
    assert world.core.list_node().items == []
    world.start(138)
    node = until(lambda: world.node("gpu-wk1"))
    assert ready(node) == "False"
    smbios = world.pve.nodes("pve1").qemu(138).config.get()["smbios1"]
    assert node.status.node_info.system_uuid == smbios.split("uuid=")[1].split(",")[0].lower()
    labels = node.metadata.labels
    assert labels["kubernetes.io/hostname"] == "gpu-wk1"
    assert labels["node.kubernetes.io/instance-type"] == "pve-8c-16g"
    assert "node-role.kubernetes.io/control-plane" not in labels
    assert node.status.capacity["nvidia.com/gpu"] == "1"
    assert node.status.addresses[0].address == "10.21.0.38"
    node = until(lambda: (n := world.node("gpu-wk1")) and ready(n) == "True" and n)
    assert not any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or [])

    def running() -> list[Any]:
        listed = world.core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-wk1")
        return [p for p in listed.items if p.status.phase == "Running"]

    pods = until(lambda: len(running()) == 3 and running())
    kinds = sorted(p.metadata.owner_references[0].kind for p in pods)
    assert kinds[0] == "DaemonSet"
    assert kinds.count("ReplicaSet") == 2
    ds = client.AppsV1Api(world.core.api_client).read_namespaced_daemon_set(
        "kube-proxy", "kube-system"
    )
    assert ds.metadata.uid in {p.metadata.owner_references[0].uid for p in pods}
    pdb = until(
        lambda: (
            (
                p := world.policy.read_namespaced_pod_disruption_budget("inference", "ml")
            ).status.current_healthy
            == 2
            and p
        )
    )
    assert (pdb.status.expected_pods, pdb.status.disruptions_allowed) == (2, 1)
    summary = world.kube.nodes_summary()
    assert summary == [
        {
            "name": "gpu-wk1",
            "vm": 138,
            "ready": True,
            "unschedulable": False,
            "labels": node.metadata.labels,
            "taints": [],
        }
    ]


def test_control_plane_names_and_skips(world: World) -> None:
    for vmid in (135, 140, 141):
        world.start(vmid)
    cp = until(lambda: (n := world.node("k3s-cp1")) and ready(n) == "True" and n)
    assert cp.metadata.labels["node-role.kubernetes.io/control-plane"] == ""
    assert [(t.key, t.effect) for t in cp.spec.taints] == [
        ("node-role.kubernetes.io/control-plane", "NoSchedule")
    ]
    mirror = world.core.read_namespaced_pod("kube-apiserver-k3s-cp1", "kube-system")
    assert "kubernetes.io/config.mirror" in mirror.metadata.annotations
    until(lambda: world.node("worker-1"))
    time.sleep(0.5)
    names = sorted(n.metadata.name for n in world.core.list_node().items)
    assert names == ["k3s-cp1", "worker-1"]  # maint is not a node


def test_stop_turns_not_ready_and_restart_ready(world: World) -> None:
    world.start(140)
    until(lambda: (n := world.node("worker-1")) and ready(n) == "True")
    world.stop(140)
    node = until(lambda: (n := world.node("worker-1")) and ready(n) == "Unknown" and n)
    assert {(t.key, t.effect) for t in node.spec.taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    }
    proxy = world.core.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items
    assert [c.status for c in proxy[0].status.conditions if c.type == "Ready"] == ["False"]
    assert world.kube.nodes_summary()[0]["ready"] is False
    world.start(140)
    node = until(lambda: (n := world.node("worker-1")) and ready(n) == "True" and n)
    assert not node.spec.taints


def test_each_boot_posts_a_new_boot_id_and_a_stale_ready_outlives_the_stop(world: World) -> None:
    world.start(140)
    first = until(lambda: (n := world.node("worker-1")) and ready(n) == "True" and n)
    boot = first.status.node_info.boot_id
    world.kube.link.stale_ready = 1.0  # the node controller is slow to notice
    world.stop(140)
    time.sleep(0.4)
    stale = world.node("worker-1")
    assert (ready(stale), stale.status.node_info.boot_id) == ("True", boot)  # as it was
    until(lambda: ready(world.node("worker-1")) == "Unknown")
    world.kube.link.stale_ready = 0.0
    world.start(140)
    rebooted = until(lambda: (n := world.node("worker-1")) and ready(n) == "True" and n)
    assert rebooted.status.node_info.boot_id not in (boot, "")
    # a restart within the stale window: the Ready of the old boot, then the new boot's
    world.kube.link.stale_ready = 30.0
    second = rebooted.status.node_info.boot_id
    world.stop(140)
    world.start(140)
    posted = until(
        lambda: (n := world.node("worker-1")) and n.status.node_info.boot_id != second and n
    )
    assert ready(posted) == "False"  # the new kubelet is not Ready yet
    until(lambda: ready(world.node("worker-1")) == "True")


def test_migration_keeps_the_node(world: World) -> None:
    world.start(140)
    before = until(lambda: (n := world.node("worker-1")) and ready(n) == "True" and n)
    # live migration: the node stays Ready throughout
    world.task("pve1", world.pve.nodes("pve1").qemu(140).migrate.post(target="pve2", online=1))
    assert world.host_of(140) == "pve2"
    time.sleep(0.3)
    after = world.node("worker-1")
    assert ready(after) == "True"
    assert after.metadata.uid == before.metadata.uid
    assert after.status.node_info.system_uuid == before.status.node_info.system_uuid
    # offline migration: NotReady while stopped, the same node Ready again after the start
    world.stop(140)
    until(lambda: ready(world.node("worker-1")) == "Unknown")
    world.task("pve2", world.pve.nodes("pve2").qemu(140).migrate.post(target="pve1"))
    world.start(140)
    again = until(lambda: (n := world.node("worker-1")) and ready(n) == "True" and n)
    assert again.metadata.uid == before.metadata.uid
    assert again.status.node_info.system_uuid == before.status.node_info.system_uuid
    assert [n.metadata.name for n in world.core.list_node().items] == ["worker-1"]


def test_evicted_deployment_pods_are_replaced_on_another_gpu_worker(world: World) -> None:
    world.start(138)
    world.start(139)

    def running_on(node: str) -> list[Any]:
        return [
            p
            for p in world.core.list_namespaced_pod("ml").items
            if p.spec.node_name == node
            and p.status.phase == "Running"
            and not p.metadata.deletion_timestamp
        ]

    until(lambda: len(running_on("gpu-wk1")) == 2 and len(running_on("gpu-wk2")) == 2)
    pdb = world.policy.read_namespaced_pod_disruption_budget("inference", "ml")
    assert (pdb.status.expected_pods, pdb.status.desired_healthy) == (4, 3)
    until(
        lambda: (
            world.policy.read_namespaced_pod_disruption_budget(
                "inference", "ml"
            ).status.disruptions_allowed
            == 1
        )
    )
    world.core.patch_node("gpu-wk1", {"spec": {"unschedulable": True}})
    first, second = running_on("gpu-wk1")
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=first.metadata.name, namespace="ml"))
    world.core.create_namespaced_pod_eviction(first.metadata.name, "ml", body)
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=second.metadata.name, namespace="ml")
    )
    with pytest.raises(ApiException) as info:
        world.core.create_namespaced_pod_eviction(second.metadata.name, "ml", body)
    assert info.value.status == 429
    # the replacement lands on the schedulable GPU worker; then the budget allows one more
    until(lambda: len(running_on("gpu-wk2")) == 3)
    until(
        lambda: (
            world.policy.read_namespaced_pod_disruption_budget(
                "inference", "ml"
            ).status.disruptions_allowed
            == 1
        )
    )
    world.core.create_namespaced_pod_eviction(second.metadata.name, "ml", body)
    until(lambda: len(running_on("gpu-wk2")) == 4 and not running_on("gpu-wk1"))


def test_kubectl_drain_honours_the_budget(world: World, tmp_path: Any) -> None:
    """kubectl (>= 1.25: policy/v1 evictions) drains a GPU worker: DaemonSet pods ignored, the
    second eviction waits out a 429 until the replacement is Ready on the other worker."""
    import json
    import subprocess

    kubectl = tool("kubectl")
    version = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, check=True
    )
    minor = int(json.loads(version.stdout)["clientVersion"]["minor"].rstrip("+"))
    assert minor >= 25, f"kubectl 1.{minor} evicts through policy/v1beta1: run scripts/tools"
    world.start(138)
    world.start(139)
    until(
        lambda: (
            world.policy.read_namespaced_pod_disruption_budget(
                "inference", "ml"
            ).status.disruptions_allowed
            == 1
        )
    )
    config = world.kube.write_kubeconfig(tmp_path / "kubeconfig")
    done = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(config),
            "drain",
            "gpu-wk1",
            "--ignore-daemonsets",
            "--timeout=60s",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "node/gpu-wk1 drained" in done.stdout
    assert "ignoring DaemonSet-managed Pods: kube-system/kube-proxy-" in done.stderr
    assert "Cannot evict pod as it would violate the pod's disruption budget." in done.stderr
    left = world.core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-wk1").items
    assert [p.metadata.labels.get("k8s-app") for p in left] == ["kube-proxy"]
    assert world.node("gpu-wk1").spec.unschedulable is True


@pytest.mark.parametrize(
    ("example", "skipped", "control_plane"),
    [
        ("cps-gpu", {"k3s-maint"}, {"k3s-cp1", "k3s-cp2", "k3s-cp3"}),
        ("inferno", set(), {"inferno-master-01", "inferno-master-02", "inferno-master-03"}),
    ],
)
def test_membership_from_a_fleet_spec(
    example: str, skipped: set[str], control_plane: set[str]
) -> None:
    from pathlib import Path

    from provisiond.adapters.specfile import load_desired

    fleet = Path(__file__).resolve().parents[3] / "config" / "examples" / example / "fleet.yaml"
    membership = Membership.from_desired(load_desired([fleet]))
    assert membership.skip == skipped
    assert membership.control_plane == control_plane
    assert not membership.is_control_plane("gpu-wk1")
