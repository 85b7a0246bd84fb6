"""Kubernetes Nodes: observed by list + watch, patched with a merge patch, told about by Events.

``NodeWatch`` (a runnable) keeps an in-memory copy of every Node: it lists, then watches from
the list's resourceVersion with bookmarks; a watch that ends (its ``timeoutSeconds``) resumes
from the last resourceVersion seen; an ``ERROR`` event 410 ``Expired`` relists; a failure
(connection, 5xx) marks the copy stale and retries after a jittered, doubling wait
(``reconnect_initial`` … ``reconnect_max``), relisting first. A change to what provisiond sees
of a node it manages (labels, taints, annotations, unschedulable, Ready; not heartbeats) calls
``on_change(reason)`` at once, so the reconciler reacts to the watch, not to its timer.

``KubeNodes`` is the ``KubeReader`` and the node half of ``KubeWriter``:
- ``nodes()`` answers from the watch's copy while it is in sync (no request per cycle), else
  lists now (``plan``/``apply`` have no watch); unreachable or 5xx → ``TransientError``;
- ``patch_node`` sends one JSON merge patch carrying ``metadata.resourceVersion`` (so it
  applies only to the node as read: 409 → ``ConflictError``) and, when taints change, the whole
  taint list (merge patches replace lists) with the ``timeAdded`` of every kept taint as read;
  the answer goes into the watch's copy at once, so the next action on the same node reads the
  new resourceVersion and provisiond's own write, echoed by the watch, triggers no cycle;
- ``node_event`` creates a core/v1 Event on the Node in namespace ``default`` (where the
  kubelet puts node events) with ``source.component=provisiond``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import structlog
from kubernetes.aio import client as kclient
from kubernetes.aio import watch as kwatch
from kubernetes.aio.client.exceptions import ApiException

from provisiond.adapters.kube import KubeCalls, KubernetesSettings, map_error
from provisiond.core.desired import Taint
from provisiond.core.errors import ProvisiondError
from provisiond.core.observed import MANAGED_ANNOTATION, KubeNode

log = structlog.get_logger("provisiond.kube")

COMPONENT = "provisiond"
EVENT_NAMESPACE = "default"
NODES = "/api/v1/nodes"
NODE = "/api/v1/nodes/{name}"


def _ready(node: kclient.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def to_node(node: kclient.V1Node) -> KubeNode:
    """The API's Node as the core sees it."""
    meta, spec, status = node.metadata, node.spec, node.status
    taints = (spec.taints if spec else None) or []
    info = status.node_info if status is not None else None
    uuid = info.system_uuid if info is not None else None
    boot = info.boot_id if info is not None else None
    return KubeNode(
        name=meta.name if meta and meta.name else "",
        labels=dict(meta.labels or {}) if meta else {},
        taints=tuple(Taint(t.key, t.value, t.effect) for t in taints),
        annotations=dict(meta.annotations or {}) if meta else {},
        unschedulable=bool(spec.unschedulable) if spec else False,
        ready=_ready(node),
        resource_version=meta.resource_version or "" if meta else "",
        system_uuid=uuid.lower() if uuid else None,
        boot_id=boot or None,
    )


def _seen(node: KubeNode) -> KubeNode:
    """What a change is judged on: everything but the resourceVersion (heartbeats move it)."""
    return replace(node, resource_version="")


class NodeCache:
    """The watch's copy of the Nodes; ``synced`` only while the watch is connected."""

    def __init__(self) -> None:
        self.nodes: dict[str, KubeNode] = {}
        self.raw_taints: dict[str, list[kclient.V1Taint]] = {}
        self.synced = False

    def put(self, raw: kclient.V1Node) -> tuple[KubeNode | None, KubeNode]:
        node = to_node(raw)
        old = self.nodes.get(node.name)
        self.nodes[node.name] = node
        self.raw_taints[node.name] = list((raw.spec.taints if raw.spec else None) or [])
        return old, node

    def drop(self, name: str) -> KubeNode | None:
        self.raw_taints.pop(name, None)
        return self.nodes.pop(name, None)

    def replace_all(self, items: list[kclient.V1Node]) -> None:
        self.nodes.clear()
        self.raw_taints.clear()
        for raw in items:
            self.put(raw)


def _taint_body(taint: Taint, kept: list[kclient.V1Taint]) -> dict[str, str]:
    body = {"key": taint.key, "effect": taint.effect}
    if taint.value is not None:
        body["value"] = taint.value
    for t in kept:  # keep the timeAdded the node lifecycle controller set
        if (t.key, t.value, t.effect) == (taint.key, taint.value, taint.effect) and t.time_added:
            body["timeAdded"] = t.time_added.strftime("%Y-%m-%dT%H:%M:%SZ")
    return body


class KubeNodes:
    """``KubeReader`` + the node half of ``KubeWriter`` (see the module docstring)."""

    def __init__(self, calls: KubeCalls, cache: NodeCache | None = None) -> None:
        self.calls = calls
        self.cache = cache

    async def _api(self) -> kclient.CoreV1Api:
        return kclient.CoreV1Api(await self.calls.client())

    async def list_raw(self) -> kclient.V1NodeList:
        core, timeout = await self._api(), self.calls.request_timeout
        return await self.calls.call("GET", NODES, lambda: core.list_node(_request_timeout=timeout))

    async def nodes(self) -> tuple[KubeNode, ...]:
        if self.cache is not None and self.cache.synced:
            return tuple(self.cache.nodes[n] for n in sorted(self.cache.nodes))
        listed = await self.list_raw()
        return tuple(sorted((to_node(n) for n in listed.items), key=lambda n: n.name))

    async def patch_node(
        self,
        name: str,
        *,
        resource_version: str,
        labels: Mapping[str, str | None] = {},
        taints: tuple[Taint, ...] | None = None,
        unschedulable: bool | None = None,
        annotations: Mapping[str, str | None] = {},
    ) -> KubeNode:
        meta: dict[str, object] = {"resourceVersion": resource_version}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        spec: dict[str, object] = {}
        if taints is not None:
            kept = self.cache.raw_taints.get(name, []) if self.cache is not None else []
            spec["taints"] = [_taint_body(t, kept) for t in taints]
        if unschedulable is not None:
            spec["unschedulable"] = unschedulable
        body: dict[str, object] = {"metadata": meta, **({"spec": spec} if spec else {})}
        core, timeout = await self._api(), self.calls.request_timeout
        raw = await self.calls.call(
            "PATCH",
            NODE,
            lambda: core.patch_node(
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=timeout,
            ),
        )
        if self.cache is not None:
            self.cache.put(raw)
        return to_node(raw)

    async def node_event(
        self,
        node: str,
        *,
        reason: str,
        message: str,
        type: str = "Normal",  # noqa: A002 - the Event field's name, as the port says
    ) -> None:
        now = datetime.now(UTC)
        event = kclient.CoreV1Event(
            metadata=kclient.V1ObjectMeta(
                name=f"{node}.{time.time_ns():x}", namespace=EVENT_NAMESPACE
            ),
            involved_object=kclient.V1ObjectReference(api_version="v1", kind="Node", name=node),
            reason=reason,
            message=message[:1024],
            type=type,
            source=kclient.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=socket.gethostname(),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        core, timeout = await self._api(), self.calls.request_timeout
        await self.calls.call(
            "POST",
            "/api/v1/namespaces/{namespace}/events",
            lambda: core.create_namespaced_event(EVENT_NAMESPACE, event, _request_timeout=timeout),
        )


class _Expired(Exception):  # noqa: N818 - a signal inside the watch loop, not an error
    """The watch's resourceVersion is too old (410): relist."""


class NodeWatch:
    """List + watch Nodes into ``cache`` until stopped (a manager runnable)."""

    name = "node-watch"

    def __init__(
        self,
        nodes: KubeNodes,
        cache: NodeCache,
        settings: KubernetesSettings,
        *,
        on_change: Callable[[str], None],
        managed: Callable[[str], bool] = lambda _name: False,
        rng: random.Random | None = None,
    ) -> None:
        self._nodes = nodes
        self._cache = cache
        self._settings = settings
        self._on_change = on_change
        self._managed = managed  # node names the spec names (the annotation counts too)
        self._rng = rng or random.Random()  # noqa: S311 - reconnect jitter, not cryptography
        self.relists = 0  # lists made (first one included): for tests and logs
        self.resource_version: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        task = asyncio.create_task(self._loop())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopped):
                t.cancel()
            await asyncio.gather(task, stopped, return_exceptions=True)
            self._cache.synced = False

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                await self._watch()
                failures = 0
            except _Expired:
                log.info("kube_watch_expired", resource_version=self.resource_version)
                self.resource_version = None
            except (ProvisiondError, ApiException, OSError, TimeoutError) as exc:
                self._cache.synced = False
                self.resource_version = None
                failures += 1
                ceiling = min(
                    self._settings.reconnect_max,
                    self._settings.reconnect_initial * 2 ** (failures - 1),
                )
                delay = self._rng.uniform(ceiling / 2, ceiling)
                log.warning("kube_watch_failed", error=str(exc), retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listed = await self._nodes.list_raw()
        before = dict(self._cache.nodes)
        self._cache.replace_all(list(listed.items))
        self.relists += 1
        self.resource_version = listed.metadata.resource_version if listed.metadata else None
        self._cache.synced = True
        changed = [
            n
            for n in sorted({*before, *self._cache.nodes})
            if self._differs(before.get(n), self._cache.nodes.get(n))
        ]
        if changed and self.relists > 1:
            self._on_change(f"kubernetes nodes changed while unwatched: {', '.join(changed)}")

    async def _watch(self) -> None:
        core = kclient.CoreV1Api(await self._nodes.calls.client())
        s = self._settings
        started = time.perf_counter()
        # kubernetes.aio.watch ships no annotations (its client package does)
        async with kwatch.Watch() as w:  # type: ignore[no-untyped-call]
            stream = w.stream(
                core.list_node,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=s.watch_timeout,
                _request_timeout=s.watch_timeout + s.request_timeout,
            )
            try:
                async for event in stream:
                    self._apply(event)
                    self.resource_version = w.resource_version or self.resource_version
                    self._cache.synced = True
            except ApiException as exc:
                if exc.status == 410:
                    raise _Expired from exc
                raise map_error(exc, f"WATCH {NODES}") from exc
            finally:
                self._nodes.calls.report("WATCH", NODES, "200", time.perf_counter() - started)

    def _apply(self, event: Mapping[str, object]) -> None:
        kind, raw = event.get("type"), event.get("object")
        if kind == "BOOKMARK" or not isinstance(raw, kclient.V1Node):
            return
        if kind == "DELETED":
            name = raw.metadata.name if raw.metadata and raw.metadata.name else ""
            old, new = self._cache.drop(name), None
        else:
            old, new = self._cache.put(raw)
        if self._differs(old, new):
            node = new or old
            assert node is not None
            self._on_change(f"kubernetes node {node.name} {str(kind).lower()}")

    def _differs(self, old: KubeNode | None, new: KubeNode | None) -> bool:
        if old is not None and new is not None and _seen(old) == _seen(new):
            return False
        return any(
            n is not None and (self._managed(n.name) or MANAGED_ANNOTATION in n.annotations)
            for n in (old, new)
        )
