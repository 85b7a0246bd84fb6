"""The node adapter against the Kubernetes simulator with the real ``kubernetes.aio`` client:
the watch (resume, 410 relist, reconnect), merge patches with resourceVersion, Events, and the
cordon/uncordon/taint actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kubernetes.aio import client

from provisiond.adapters.kube import KubeCalls, KubernetesSettings, kube_api
from provisiond.adapters.kube_nodes import KubeNodes, NodeCache, NodeWatch
from provisiond.core.actions import Cordon, TaintNode, Uncordon
from provisiond.core.desired import Taint
from provisiond.core.errors import TransientError
from provisiond.core.observed import CORDONED_ANNOTATION, PAUSED_ANNOTATION
from provisiond.core.ports import ConflictError
from provisiond.runtime.actions import kube as node_actions
from provisiond.runtime.actions.context import (
    ActionContext,
    AdoptedSignal,
    ReplanSignal,
)
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import aio_api_client

pytestmark = pytest.mark.integration


@asynccontextmanager
async def adapter(settings: KubernetesSettings) -> AsyncIterator[KubeNodes]:
    calls = KubeCalls(lambda: kube_api(settings, environ={}))
    try:
        yield KubeNodes(calls, NodeCache())
    finally:
        await calls.close()


def nodes_cache(nodes: KubeNodes) -> NodeCache:
    assert nodes.cache is not None
    return nodes.cache


async def _someone_patches(kube: KubeSim, name: str, body: dict[str, Any]) -> None:
    """A change made by another client (kubectl, another controller)."""
    async with aio_api_client(kube) as api:
        await client.CoreV1Api(api).patch_node(name, body)


async def _eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling another thread's state (the simulator)
            await asyncio.sleep(0.02)


@asynccontextmanager
async def watching(
    nodes: KubeNodes, settings: KubernetesSettings, triggers: list[str]
) -> AsyncIterator[NodeWatch]:
    assert nodes.cache is not None
    watch = NodeWatch(
        nodes, nodes.cache, settings, on_change=triggers.append, managed=lambda n: n != "other"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        await _eventually(lambda: nodes.cache is not None and nodes.cache.synced)
        yield watch
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_watch_follows_changes_resumes_relists_on_410_and_reconnects(
    kube: KubeSim, kube_settings: KubernetesSettings
) -> None:
    kube.add_node("n1")
    kube.add_node("other")
    triggers: list[str] = []
    async with adapter(kube_settings) as nodes, watching(nodes, kube_settings, triggers) as w:
        assert nodes.cache is not None
        assert [n.name for n in await nodes.nodes()] == ["n1", "other"]
        lists = kube.request_counts().get(("list", "nodes"), 0)
        await _someone_patches(kube, "n1", {"metadata": {"labels": {"a": "b"}}})
        await _eventually(lambda: any("n1" in t for t in triggers))
        # answered from the watch's copy: no list per read
        assert (await nodes.nodes())[0].labels["a"] == "b"
        assert kube.request_counts().get(("list", "nodes"), 0) == lists
        # unmanaged nodes trigger nothing
        before = len(triggers)
        await _someone_patches(kube, "other", {"metadata": {"labels": {"x": "y"}}})
        await _eventually(lambda: "x" in nodes_cache(nodes).nodes["other"].labels)
        assert len(triggers) == before

        relists = w.relists
        assert kube.expire_watches() >= 1  # ERROR 410 Expired on the open watch
        await _eventually(lambda: w.relists == relists + 1)
        assert nodes.cache.synced

        kube.inject("nodes", verb="*", status=503)
        kube.drop_watches()
        await _eventually(lambda: nodes.cache is not None and not nodes.cache.synced)
        with pytest.raises(TransientError):
            await nodes.nodes()  # stale copy is not used: a fresh list, which fails
        kube.clear_faults()
        await _eventually(lambda: nodes.cache is not None and nodes.cache.synced)
        kube.add_node("n2")
        await _eventually(lambda: any("n2" in t for t in triggers))


async def test_patches_apply_to_the_version_read_and_keep_others_taints(
    kube: KubeSim, kube_settings: KubernetesSettings
) -> None:
    kube.add_node("n1")
    async with adapter(kube_settings) as nodes:
        old = (await nodes.nodes())[0]
        theirs = old.taints
        mine = Taint("inferno/gpu", "true", "NoSchedule")
        new = await nodes.patch_node(
            "n1", resource_version=old.resource_version, taints=(*theirs, mine)
        )
        assert new.taints == (*theirs, mine)
        with pytest.raises(ConflictError):  # written against the version read before
            await nodes.patch_node("n1", resource_version=old.resource_version, labels={"a": "b"})
        await nodes.node_event("n1", reason="ProvisiondTest", message="hello", type="Warning")
    events = [e for e in kube.objects("events", "default") if e["reason"] == "ProvisiondTest"]
    assert len(events) == 1
    assert events[0]["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": "n1"}
    assert events[0]["source"] == {"component": "provisiond"}
    assert events[0]["type"] == "Warning"


async def _direct(_what: str, fn: Callable[[], Any]) -> Any:
    return await fn()


def _ctx(nodes: KubeNodes) -> ActionContext:
    # the Proxmox ports and task waiter are not touched by node actions
    return ActionContext(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        _direct,
        None,  # type: ignore[arg-type]
        asyncio.Event(),
        kube_reader=nodes,
        kube_writer=nodes,
    )


async def test_cordon_uncordon_and_taint_actions(
    kube: KubeSim, kube_settings: KubernetesSettings
) -> None:
    kube.add_node("n1")
    kube.add_node("busy")
    async with adapter(kube_settings) as nodes:
        ctx = _ctx(nodes)
        cordon = Cordon(id="c", reason="moving", node="n1", vmid=1)
        await node_actions.cordon(cordon, ctx)
        spec = kube.get("nodes", "n1")
        assert spec is not None
        assert spec["spec"]["unschedulable"] is True
        assert CORDONED_ANNOTATION in spec["metadata"]["annotations"]
        with pytest.raises(AdoptedSignal):
            await node_actions.cordon(cordon, ctx)
        await node_actions.uncordon(Uncordon(id="u", reason="done", node="n1", vmid=1), ctx)
        spec = kube.get("nodes", "n1")
        assert spec is not None
        assert not spec["spec"].get("unschedulable")
        assert CORDONED_ANNOTATION not in (spec["metadata"].get("annotations") or {})
        # a node someone else cordoned is not uncordoned by provisiond
        busy = {n.name: n for n in await nodes.nodes()}["busy"]
        await nodes.patch_node("busy", resource_version=busy.resource_version, unschedulable=True)
        with pytest.raises(AdoptedSignal, match="not cordoned by provisiond"):
            await node_actions.uncordon(Uncordon(id="u", reason="x", node="busy", vmid=2), ctx)

        gpu = Taint("inferno/gpu", "true", "NoSchedule")
        taint = TaintNode(id="t", reason="r", node="n1", vmid=1, add=(gpu,), managed="{}")
        await node_actions.taint(taint, ctx)
        assert gpu in {n.name: n for n in await nodes.nodes()}["n1"].taints
        with pytest.raises(AdoptedSignal):
            await node_actions.taint(taint, ctx)
        reasons = {e["reason"] for e in kube.objects("events", "default")}
        assert {"ProvisiondCordon", "ProvisiondUncordon", "ProvisiondTaints"} <= reasons

        paused = {n.name: n for n in await nodes.nodes()}["busy"]
        await nodes.patch_node(
            paused.name,
            resource_version=paused.resource_version,
            annotations={PAUSED_ANNOTATION: "true"},
        )
        with pytest.raises(ReplanSignal, match="paused"):
            await node_actions.cordon(Cordon(id="c2", reason="r", node=paused.name, vmid=3), ctx)
        with pytest.raises(ReplanSignal, match="gone"):
            await node_actions.cordon(Cordon(id="c3", reason="r", node="nope", vmid=4), ctx)
