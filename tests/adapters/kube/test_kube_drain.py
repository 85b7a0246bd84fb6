"""Drain through the executor with the real adapters (``kubernetes.aio`` client, ``KubeNodes`` +
``KubePods``) against the Kubernetes simulator: cordon first, evictions honour a
PodDisruptionBudget that first blocks (429) and then allows, DaemonSet and mirror pods stay, a
timeout leaves the node cordoned with a Warning Event, emptyDir pods wait for the policy, an
unreachable API evicts nothing. No pod is ever deleted directly, no Proxmox call is made."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client

from provisiond.adapters.kube import KubeCalls
from provisiond.adapters.kube_pods import NodesAndPods
from provisiond.core.actions import Drain
from provisiond.core.observed import CORDONED_ANNOTATION
from provisiond.core.plan import Plan
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.results import Outcome
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import aio_api_client, api_client

pytestmark = pytest.mark.integration

CONFIG = ExecutorConfig(
    eviction_retry=0.05, eviction_retry_max=0.2, pod_poll=0.05, retry_initial=0.01, max_attempts=2
)


class NoProxmox:
    """A drain makes no Proxmox call: any attempt fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"drain called Proxmox: {name}")


def pod(name: str, node: str = "wk1", *, ns: str = "default", **extra: Any) -> dict[str, Any]:
    owner = extra.pop("owner", ("apps/v1", "ReplicaSet", "web-5d9c"))
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.27"}], "nodeName": node}
    if extra.pop("empty_dir", False):
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": extra.pop("app", "web")},
            "annotations": extra.pop("annotations", {}),
            "ownerReferences": [
                {
                    "apiVersion": owner[0],
                    "kind": owner[1],
                    "name": owner[2],
                    "uid": "6f1c2b1e-0000-4000-8000-000000000001",
                    "controller": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def put(kube: KubeSim, p: dict[str, Any]) -> None:
    kube.create("pods", p, namespace=p["metadata"]["namespace"])


def world(kube: KubeSim, *, min_available: int) -> None:
    """Node wk1 with two web pods (PDB ``minAvailable``), a DaemonSet pod and a mirror pod."""
    kube.add_node("wk1")
    kube.add_node("wk2")
    put(kube, pod("web-0"))
    put(kube, pod("web-1"))
    put(kube, pod("proxy", ns="kube-system", owner=("apps/v1", "DaemonSet", "kube-proxy")))
    mirror = {"kubernetes.io/config.mirror": "abc"}
    put(kube, pod("static", ns="kube-system", owner=("v1", "Node", "wk1"), annotations=mirror))
    pdb = {"minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}}}
    kube.create("poddisruptionbudgets", {"metadata": {"name": "web"}, "spec": pdb}, group="policy")


def on_node(kube: KubeSim, node: str = "wk1") -> list[str]:
    return sorted(
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in kube.objects("pods")
        if p["spec"].get("nodeName") == node
    )


def node_events(kube: KubeSim, node: str = "wk1") -> list[tuple[str, str, str]]:
    with api_client(kube) as api:
        listed = client.CoreV1Api(api).list_namespaced_event(
            "default", field_selector=f"involvedObject.kind=Node,involvedObject.name={node}"
        )
    return [(e.type, e.reason, e.source.component) for e in listed.items]


@pytest.fixture
async def executor(kube: KubeSim) -> AsyncIterator[Executor]:
    async with aio_api_client(kube) as api:
        ports = NodesAndPods(KubeCalls(api, request_timeout=5.0))
        yield Executor(
            NoProxmox(),  # type: ignore[arg-type]  # never called: the test proves it
            NoProxmox(),  # type: ignore[arg-type]
            config=CONFIG,
            kube_reader=ports,
            kube_writer=ports,
        )


def drain(timeout: float = 30.0, **kw: Any) -> Plan:
    return Plan(
        actions=(Drain(id="drain:wk1", reason="test", node="wk1", vmid=101, timeout=timeout, **kw),)
    )


async def test_a_budget_that_blocks_then_allows(kube: KubeSim, executor: Executor) -> None:
    world(kube, min_available=2)  # 2 healthy of 2 needed: every eviction is a 429 at first

    def relax() -> None:  # after two rounds of 429s, replicas come up elsewhere: allowed
        while kube.request_counts().get(("create", "pods/eviction"), 0) < 4:
            time.sleep(0.01)
        put(kube, pod("web-2", "wk2"))
        put(kube, pod("web-3", "wk2"))

    helper = threading.Thread(target=relax, daemon=True)
    helper.start()
    report = await executor.execute(drain())
    helper.join(5)
    result = report.results[0]
    assert result.outcome is Outcome.SUCCEEDED, result.detail
    assert on_node(kube) == ["kube-system/proxy", "kube-system/static"]  # DaemonSet + mirror stay
    node = kube.get("nodes", "wk1")
    assert node is not None
    assert node["spec"]["unschedulable"] is True
    assert CORDONED_ANNOTATION in node["metadata"]["annotations"]
    counts = kube.request_counts()
    assert counts[("create", "pods/eviction")] >= 4 + 2  # 429s first, then the two evictions
    assert not any(verb == "delete" for verb, _ in counts)  # never a direct delete
    reasons = [r for _, r, _ in node_events(kube)]
    assert reasons[0] == "ProvisiondCordon"
    assert reasons[-1] == "Drained"
    assert {c for _, _, c in node_events(kube)} == {"provisiond"}


async def test_timeout_leaves_the_node_cordoned_with_a_warning(
    kube: KubeSim, executor: Executor
) -> None:
    world(kube, min_available=2)
    report = await executor.execute(drain(timeout=0.5))
    result = report.results[0]
    assert result.outcome is Outcome.FAILED
    assert "timed out after 0.5 s" in result.detail
    assert "default/web-0" in result.detail
    node = kube.get("nodes", "wk1")
    assert node is not None
    assert node["spec"]["unschedulable"] is True
    assert on_node(kube) == [
        "default/web-0",
        "default/web-1",
        "kube-system/proxy",
        "kube-system/static",
    ]
    assert ("Warning", "DrainTimeout", "provisiond") in node_events(kube)


async def test_empty_dir_pods_wait_for_the_policy(kube: KubeSim, executor: Executor) -> None:
    kube.add_node("wk1")
    put(kube, pod("cache", app="cache", empty_dir=True))
    refused = await executor.execute(drain())
    assert refused.results[0].outcome is Outcome.FAILED
    assert "deleteEmptyDirData is off" in refused.results[0].detail
    assert on_node(kube) == ["default/cache"]
    assert ("Warning", "DrainBlocked", "provisiond") in node_events(kube)
    executor.backoff.succeeded(101)  # the failure backs the VM off; the policy changed
    allowed = await executor.execute(drain(delete_empty_dir_data=True))
    assert allowed.results[0].outcome is Outcome.SUCCEEDED, allowed.results[0].detail
    assert on_node(kube) == []


async def test_unreachable_kubernetes_evicts_nothing(kube: KubeSim, executor: Executor) -> None:
    world(kube, min_available=0)
    kube.inject("pods", verb="list", status=503)
    report = await executor.execute(drain())
    assert report.results[0].outcome is Outcome.FAILED
    assert "503" in report.results[0].detail
    assert kube.request_counts().get(("create", "pods/eviction"), 0) == 0
    assert len(on_node(kube)) == 4
    await asyncio.sleep(0)
