"""The pod half of the Kubernetes port: the pods on one node, and their eviction (issue 16).

Pods are never watched nor cached: a drain lists the pods of its node when it runs
(``GET /api/v1/pods?fieldSelector=spec.nodeName=<node>&limit=500``, following ``continue``, all
namespaces — what ``kubectl drain`` reads) and again while it waits, so it always decides on
what the API server holds now.

Eviction is the ``policy/v1`` Eviction subresource (``POST …/pods/{name}/eviction``), which
honours PodDisruptionBudgets; a pod is never deleted directly. The answers become
``core.observed.Eviction``: 201 → ``EVICTED`` (the pod is deleted gracefully: it may linger with a
``deletionTimestamp``), 429 → ``BLOCKED`` (a budget allows no disruption now; the caller retries
later), 404 → ``GONE``. Anything else is an error of the ``core.errors`` tree: 5xx, timeouts and
connection failures are transient; 401/403 are ``AuthError``; the rest (400, 422, the 500 "more
than one PodDisruptionBudget", which retrying cannot fix) permanent. Error texts carry the
server's ``Status`` message only, never request headers.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s

from provisiond.core.errors import AuthError, PermanentError, ProvisiondError, TransientError
from provisiond.core.observed import Eviction, KubePod

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PAGE = 500
_MULTIPLE_PDBS = "more than one PodDisruptionBudget"
_FAILURES = (k8s.ApiException, aiohttp.ClientError, TimeoutError, OSError)


class KubePods:
    """``pods_on`` and ``evict`` over a ``kubernetes.aio`` ``ApiClient`` (owned by the caller)."""

    def __init__(self, api: Any, *, page: int = PAGE) -> None:
        self._core = k8s.CoreV1Api(api)
        self._page = page

    async def pods_on(self, node: str) -> tuple[KubePod, ...]:
        pods: list[KubePod] = []
        token: str | None = None
        while True:
            try:
                page = await self._core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={node}", limit=self._page, _continue=token
                )
            except _FAILURES as exc:
                raise error(exc, f"list pods on node {node}") from exc
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
        try:
            await self._core.create_namespaced_pod_eviction(name, namespace, body)
        except k8s.ApiException as exc:
            if exc.status == 429:
                return Eviction.BLOCKED
            if exc.status == 404:
                return Eviction.GONE
            raise error(exc, f"evict pod {namespace}/{name}") from exc
        except _FAILURES as exc:
            raise error(exc, f"evict pod {namespace}/{name}") from exc
        return Eviction.EVICTED


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


def status_message(exc: k8s.ApiException) -> str:
    """The ``Status.message`` of an API error (the body is a ``Status`` object), else the reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.reason or "no message")


def error(exc: Exception, what: str) -> ProvisiondError:
    """``exc`` on the error tree (see the module docstring)."""
    if isinstance(exc, k8s.ApiException):
        code = int(exc.status or 0)
        text = f"{what}: {code} {status_message(exc)}"
        if code in (401, 403):
            return AuthError(text)
        if code == 500 and _MULTIPLE_PDBS in text:
            return PermanentError(text)
        if code >= 500 or code in (0, 409, 429):
            return TransientError(text)
        return PermanentError(text)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return TransientError(f"{what}: Kubernetes API unreachable ({type(exc).__name__})")
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}")
