"""The daemon keeps Kubernetes node labels and taints as the spec says: both simulators, linked,
the real ``kubernetes.aio`` client, the daemon's reconciler and node watch in this loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client
from linked_world import linked, running

from provisiond.adapters.specsource import SpecFiles
from provisiond.core.observed import MANAGED_ANNOTATION
from provisiond.core.plan import Plan
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import aio_api_client

pytestmark = pytest.mark.integration


def _node(kube: KubeSim, name: str) -> dict[str, Any]:
    node = kube.get("nodes", name)
    assert node is not None, name
    return node


def _labels(kube: KubeSim, name: str) -> dict[str, str]:
    return dict(_node(kube, name)["metadata"].get("labels") or {})


def _taints(kube: KubeSim, name: str) -> list[str]:
    return sorted(
        f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
        for t in _node(kube, name)["spec"].get("taints") or []
    )


def _no_node_work(plan: Plan | None) -> bool:
    return plan is not None and not plan.actions and not plan.waiting


async def test_cps_gpu_labels_and_taints_converge_and_others_are_untouched(
    tmp_path: Path,
) -> None:
    with linked("cps-gpu", tmp_path) as world:
        async with running(world.settings) as (_, cycles):
            await cycles.until(lambda r: r.converged, within=90)
        kube = world.kube
        gpu1 = _labels(kube, "k3s-wk-gpu1")
        assert {k: gpu1[k] for k in ("accelerator", "gpu-model", "scratch")} == {
            "accelerator": "nvidia",
            "gpu-model": "a100",
            "scratch": "nvme",
        }
        assert gpu1["nvidia.com/mig.capable"] == "true"
        assert "nvidia.com/mig.capable" not in _labels(kube, "k3s-wk-gpu2")
        # the kubelet's and the GPU operator's labels are still there
        assert gpu1["kubernetes.io/hostname"] == "k3s-wk-gpu1"
        assert gpu1["nvidia.com/gpu.present"] == "true"
        assert "node-role.kubernetes.io/control-plane=true:NoSchedule" in _taints(kube, "k3s-cp1")
        assert kube.get("nodes", "k3s-maint") is None  # kubernetes.node: false
        record = json.loads(
            _node(kube, "k3s-wk-gpu1")["metadata"]["annotations"][MANAGED_ANNOTATION]
        )
        assert record["labels"] == ["accelerator", "gpu-model", "nvidia.com/mig.capable", "scratch"]
        events = [
            e
            for e in kube.objects("events", "default")
            if e["involvedObject"]["name"] == "k3s-wk-gpu1"
        ]
        assert {e["reason"] for e in events} >= {"ProvisiondLabels"}
        assert all(e["source"]["component"] == "provisiond" for e in events)


async def test_inferno_pool_labels_gpu_taint_and_the_control_plane_taint(tmp_path: Path) -> None:
    with linked("inferno", tmp_path) as world:
        async with running(world.settings) as (_, cycles):
            await cycles.until(lambda r: r.converged, within=90)
        kube = world.kube
        names = sorted(n["metadata"]["name"] for n in kube.objects("nodes"))
        gpu = [n for n in names if "gpu" in n]
        masters = [n for n in names if "master" in n]
        assert gpu
        assert masters
        for n in gpu:
            assert _labels(kube, n)["inferno.circle"] == "2"
            assert "inferno/gpu=true:NoSchedule" in _taints(kube, n)
        for n in masters:
            assert _labels(kube, n)["inferno.circle"] == "1"
            # the kubelet's control-plane taint, not in the spec, is left alone
            assert "node-role.kubernetes.io/control-plane:NoSchedule" in _taints(kube, n)


async def test_watch_restores_a_hand_removed_label_and_spec_removal_leaves_the_node(
    tmp_path: Path,
) -> None:
    with linked("cps-gpu", tmp_path, interval=600.0) as world:
        kube = world.kube
        async with running(world.settings) as (built, cycles):
            await cycles.until(lambda r: r.converged, within=90)
            # someone else's label, and a hand-removed managed one (kubectl label node … scratch-)
            async with aio_api_client(kube) as api:
                core = client.CoreV1Api(api)
                await core.patch_node(
                    "k3s-wk-gpu2", {"metadata": {"labels": {"team": "ml", "scratch": None}}}
                )
            # the reconcile interval is 10 minutes: only the node watch can bring it back
            await cycles.until(
                lambda r: _no_node_work(r.plan) and "scratch" in _labels(kube, "k3s-wk-gpu2"),
                within=30,
            )
            assert _labels(kube, "k3s-wk-gpu2")["team"] == "ml"
            assert any(
                "kubernetes node k3s-wk-gpu2" in t for r in cycles.results for t in r.triggers
            )

            # the spec drops a label: it leaves the node (and only it)
            fleet = world.example / "fleet.yaml"
            copy = tmp_path / "spec"
            copy.mkdir()
            text = fleet.read_text().replace(
                "labels: {accelerator: nvidia, gpu-model: a100, scratch: nvme}",
                "labels: {accelerator: nvidia, gpu-model: a100}",
            )
            assert "scratch: nvme" not in text
            (copy / "fleet.yaml").write_text(text)
            built.reconciler.reload(SpecFiles([copy]))
            await cycles.until(
                lambda r: r.converged and "scratch" not in _labels(kube, "k3s-wk-gpu2"),
                within=30,
            )
            assert _labels(kube, "k3s-wk-gpu2")["team"] == "ml"
            assert _labels(kube, "k3s-wk-gpu2")["accelerator"] == "nvidia"


async def test_kubernetes_5xx_proxmox_converges_and_node_actions_wait(tmp_path: Path) -> None:
    with linked("cps-gpu", tmp_path) as world:
        kube = world.kube
        kube.inject("*", status=503)  # every Kubernetes request fails from the start
        async with running(world.settings) as (_, cycles):
            last = await cycles.until(
                lambda r: (
                    r.plan is not None
                    and r.observed is not None
                    and all(v.status.value == "running" for v in r.observed.vms if not v.template)
                    and len([v for v in r.observed.vms if not v.template]) == 8
                    and not r.plan.actions
                ),
                within=90,
            )
            assert last.observed is not None
            assert last.observed.kube is None
            assert "kubernetes" in last.incomplete
            assert not last.converged  # an incomplete observation is never convergence
            assert last.plan is not None
            assert last.desired is not None
            nodes = {d.vmid for d in last.desired.all_vms() if d.kubernetes is not None}
            unseen = "not observed: kubernetes nodes"
            assert nodes
            assert {w.vmid for w in last.plan.waiting if w.reason.startswith(unseen)} == nodes
            assert not any(
                n["metadata"].get("annotations", {}).get(MANAGED_ANNOTATION)
                for n in kube.objects("nodes")
            )
            kube.clear_faults()
            kube.drop_watches()
            await cycles.until(lambda r: r.converged, within=60)
        assert _labels(kube, "k3s-wk-gpu1")["gpu-model"] == "a100"
