"""``adapters.kube_pods`` with the real ``kubernetes.aio`` client against the Kubernetes
simulator: the pods of one node (field selector, all namespaces), what a drain must know
of each (DaemonSet, mirror, emptyDir, terminating), and the Eviction API's answers mapped to
``Eviction`` or the error tree — never a direct DELETE."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from provisiond.adapters.kube import KubeCalls
from provisiond.adapters.kube_pods import KubePods
from provisiond.core.errors import PermanentError, TransientError
from provisiond.core.observed import Eviction, KubePod
from provisiond.sim.kube import KubeSim, Options
from provisiond.sim.kube.testing import aio_api_client, running_kube

pytestmark = pytest.mark.integration


def pod(
    name: str,
    node: str = "wk1",
    *,
    ns: str = "default",
    app: str = "web",
    owner: tuple[str, str] = ("apps/v1", "ReplicaSet"),
    annotations: dict[str, str] | None = None,
    empty_dir: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.27"}], "nodeName": node}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app": app},
            "annotations": annotations or {},
            "ownerReferences": [
                {
                    "apiVersion": owner[0],
                    "kind": owner[1],
                    "name": f"{app}-owner",
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


@pytest.fixture
def kube() -> Iterator[KubeSim]:
    with running_kube(Options(pod_termination=0.05)) as sim:
        yield sim


@pytest.fixture
async def pods(kube: KubeSim) -> AsyncIterator[KubePods]:
    async with aio_api_client(kube) as api:
        yield KubePods(KubeCalls(api))


async def test_pods_on_one_node_with_what_a_drain_needs(kube: KubeSim, pods: KubePods) -> None:
    put(kube, pod("web-a"))
    put(kube, pod("web-b", "wk2"))
    put(kube, pod("proxy", ns="kube-system", owner=("apps/v1", "DaemonSet")))
    mirror = {"kubernetes.io/config.mirror": "abc"}
    put(kube, pod("static", ns="kube-system", annotations=mirror))
    put(kube, pod("cache", empty_dir=True))
    got = await pods.pods_on("wk1")
    assert got == (
        KubePod("default", "cache", "wk1", empty_dir=True),
        KubePod("default", "web-a", "wk1"),
        KubePod("kube-system", "proxy", "wk1", daemonset=True),
        KubePod("kube-system", "static", "wk1", mirror=True),
    )
    assert kube.request_counts()[("list", "pods")] == 1  # one list per call, no watch
    assert await pods.pods_on("nowhere") == ()


async def test_evict_maps_every_answer(kube: KubeSim, pods: KubePods) -> None:
    for i in range(2):
        put(kube, pod(f"w{i}"))
    kube.create(
        "poddisruptionbudgets",
        {"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {}}},
        group="policy",
    )
    pdb = {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    kube.create("poddisruptionbudgets", {"metadata": {"name": "web2"}, "spec": pdb}, group="policy")
    assert await pods.evict("default", "w0") is Eviction.EVICTED
    assert (await pods.pods_on("wk1"))[0].terminating
    assert await pods.evict("default", "w1") is Eviction.BLOCKED  # 429: would break the budget
    assert await pods.evict("default", "nope") is Eviction.GONE
    kube.create("poddisruptionbudgets", {"metadata": {"name": "web3"}, "spec": pdb}, group="policy")
    with pytest.raises(PermanentError, match="more than one PodDisruptionBudget"):
        await pods.evict("default", "w1")
    kube.inject("pods/eviction", status=503, times=1)
    with pytest.raises(TransientError, match="503"):
        await pods.evict("default", "w1")
    counts = kube.request_counts()
    assert counts[("create", "pods/eviction")] == 5
    assert not any(verb == "delete" for verb, _ in counts)  # never a direct delete


async def test_list_failure_is_transient(kube: KubeSim, pods: KubePods) -> None:
    kube.inject("pods", verb="list", status=500, times=1)
    with pytest.raises(TransientError, match="GET /api/v1/pods: 500"):
        await pods.pods_on("wk1")
