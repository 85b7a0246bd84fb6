"""Wiring, Kubernetes part (docs/kubernetes.md): the node adapters when Kubernetes is
configured, the node watch that triggers a cycle, and the one-off observation ``plan`` makes."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from provisiond.adapters.cluster_view import ClusterView
from provisiond.adapters.kube import KubeCalls, connection_source, kube_api
from provisiond.adapters.kube_nodes import NodeCache, NodeWatch
from provisiond.adapters.kube_pods import NodesAndPods
from provisiond.adapters.metrics import Metrics
from provisiond.app.proxmox import ProxmoxParts
from provisiond.core.observed import ObservedState
from provisiond.runtime.fence import Fence
from provisiond.runtime.reconciler import Reconciler
from provisiond.settings import Settings

log = structlog.get_logger("provisiond.app")


@dataclass(slots=True)
class KubeParts:
    calls: KubeCalls
    nodes: NodesAndPods  # KubeReader + KubeWriter (nodes, and pods for drains)
    cache: NodeCache  # the node watch's copy, read by ``nodes`` while in sync

    async def aclose(self) -> None:
        await self.calls.close()


def build_kube(
    settings: Settings, metrics: Metrics | None = None, fence: Fence | None = None
) -> KubeParts | None:
    """The Kubernetes adapters, or ``None`` (logged with why) when Kubernetes is off. The
    ApiClient is made on first use: loading a kubeconfig is a coroutine. ``fence`` guards every
    mutating Kubernetes request (leader election), as it does Proxmox's."""
    k8s = settings.kubernetes
    source = connection_source(k8s)
    if isinstance(source, str):
        log.info("kubernetes_off", reason=source, note="node labels, taints, drains not managed")
        return None
    log.info("kubernetes_on", source=source.describe())
    calls = KubeCalls(
        lambda: kube_api(k8s),
        request_timeout=k8s.request_timeout,
        on_request=metrics.observe_kubernetes_request if metrics is not None else None,
        guard=fence.sending if fence is not None else None,
    )
    cache = NodeCache()
    return KubeParts(calls, NodesAndPods(calls, cache), cache)


def node_watch(kube: KubeParts, settings: Settings, reconciler: Reconciler) -> NodeWatch:
    """The node watch: a change to a node the spec names (or provisiond manages) triggers a
    cycle at once."""

    def managed(name: str) -> bool:
        desired = reconciler.desired
        return desired is not None and any(
            vm.kubernetes is not None and vm.kubernetes.node_name == name
            for vm in desired.all_vms()
        )

    return NodeWatch(
        kube.nodes, kube.cache, settings.kubernetes, on_change=reconciler.trigger, managed=managed
    )


async def observe_all(settings: Settings, parts: ProxmoxParts) -> ObservedState:
    """One observation of Proxmox and (when configured) Kubernetes, for ``plan``."""
    kube = build_kube(settings)
    try:
        return await ClusterView(parts.observer, kube.nodes if kube else None).observe()
    finally:
        if kube is not None:
            await kube.aclose()
