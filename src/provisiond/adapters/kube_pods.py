"""The pod half of the Kubernetes port: the pods on one node, and their eviction (issue 16).

Pods are never watched nor cached: a drain lists the pods of its node when it runs
(``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>&limit=500``, following ``continue``, all
namespaces — what ``kubectl drain`` reads) and again while it waits, so it always decides on
what the API server holds now.

Eviction is the ``policy/v1`` Eviction subresource (``POST …/pods/{name}/eviction``), which
honours PodDisruptionBudgets; a pod is never deleted directly. The answers become
``core.observed.Eviction``: 201 → ``EVICTED`` (the pod is deleted gracefully: it may linger with a
``deletionTimestamp``), 429 → ``BLOCKED`` (a budget allows no disruption now; the caller retries
later), 404 → ``GONE``. Anything else is an error of the ``core.errors`` tree as
``adapters.kube.map_error`` maps it, except the 500 "more than one PodDisruptionBudget", which
retrying cannot fix: permanent. Every request goes through ``KubeCalls`` (timed for metrics).
"""

from __future__ import annotations

import functools
from typing import Any

from kubernetes.aio import client as k8s
from kubernetes.aio.client.exceptions import ApiException

from provisiond.adapters.kube import KubeCalls
from provisiond.adapters.kube_nodes import KubeNodes, NodeCache
from provisiond.core.errors import PermanentError, ProvisiondError
from provisiond.core.observed import Eviction, KubePod

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PAGE = 500
_MULTIPLE_PDBS = "more than one PodDisruptionBudget"
_EVICTION = "/api/v1/namespaces/{namespace}/pods/{name}/eviction"


class KubePods:
    """``pods_on`` and ``evict`` through ``KubeCalls`` (timed, errors mapped; the ``ApiClient``
    is owned by the caller)."""

    def __init__(self, calls: KubeCalls, *, page: int = PAGE) -> None:
        self._calls = calls
        self._page = page

    async def _core(self) -> Any:
        return k8s.CoreV1Api(await self._calls.client())

    async def pods_on(self, node: str) -> tuple[KubePod, ...]:
        core = await self._core()
        pods: list[KubePod] = []
        token: str | None = None
        while True:
            page = await self._calls.call(
                "GET",
                "/api/v1/pods",
                functools.partial(
                    core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={node}",
                    limit=self._page,
                    _continue=token,
                    _request_timeout=self._calls.request_timeout,
                ),
            )
            pods.extend(pod_of(p, node) for p in page.items or ())
            token = page.metadata._continue if page.metadata is not None else None
            if not token:
                return tuple(sorted(pods, key=lambda p: (p.namespace, p.name)))

    async def evict(self, namespace: str, name: str) -> Eviction:
        body = k8s.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=k8s.V1ObjectMeta(name=name, namespace=namespace),
        )
        core = await self._core()
        try:
            await self._calls.call(
                "POST",
                _EVICTION,
                lambda: core.create_namespaced_pod_eviction(
                    name, namespace, body, _request_timeout=self._calls.request_timeout
                ),
            )
        except ProvisiondError as err:
            cause = err.__cause__
            status = cause.status if isinstance(cause, ApiException) else None
            if status == 429:
                return Eviction.BLOCKED
            if status == 404:
                return Eviction.GONE
            if status == 500 and _MULTIPLE_PDBS in str(err):
                raise PermanentError(str(err)) from cause  # retrying cannot fix it
            raise
        return Eviction.EVICTED


class NodesAndPods(KubeNodes):
    """The whole ``KubeWriter`` (and ``KubeReader``): ``KubeNodes``' node calls and
    ``KubePods``' pod calls over one ``KubeCalls``."""

    def __init__(self, calls: KubeCalls, cache: NodeCache | None = None) -> None:
        super().__init__(calls, cache)
        self._pods = KubePods(calls)

    async def pods_on(self, node: str) -> tuple[KubePod, ...]:
        return await self._pods.pods_on(node)

    async def evict(self, namespace: str, name: str) -> Eviction:
        return await self._pods.evict(namespace, name)


def pod_of(pod: Any, node: str) -> KubePod:
    """A ``V1Pod`` as the drain sees it (see ``KubePod``)."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    controller = next((r for r in meta.owner_references or () if r.controller), None)
    return KubePod(
        namespace=meta.namespace or "",
        name=meta.name or "",
        node=(spec.node_name if spec is not None else None) or node,
        daemonset=controller is not None
        and controller.kind == "DaemonSet"
        and controller.api_version == "apps/v1",
        mirror=MIRROR_ANNOTATION in (meta.annotations or {}),
        empty_dir=any(v.empty_dir is not None for v in (spec.volumes if spec else None) or ()),
        phase=(status.phase if status is not None else None) or "Unknown",
        terminating=meta.deletion_timestamp is not None,
    )
