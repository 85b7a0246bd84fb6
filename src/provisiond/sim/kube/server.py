"""``KubeSim``: the Kubernetes API simulator as a running HTTPS server, and the handle tests and
the CLI hold to reach it.

It serves on its own thread and loop, or — linked to the Proxmox simulator — on that
simulator's loop, so the link reads the Proxmox state without locks. State directory, TLS (a
throw-away CA, a certificate for 127.0.0.1, ::1 and localhost) and listening come from
``sim.tls.TlsServer``, as for the Proxmox simulator. Every handle method is safe from any
thread but the loop's own: state access runs on the loop (``call``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from provisiond.sim.kube import nodes
from provisiond.sim.kube.api import build_app
from provisiond.sim.kube.cluster import KubeCluster, Options
from provisiond.sim.kube.errors import Obj, expired
from provisiond.sim.kube.faults import KubeFault
from provisiond.sim.kube.resources import RESOURCES
from provisiond.sim.tls import TlsServer

if TYPE_CHECKING:
    from provisiond.sim.kube.link import Link

T = TypeVar("T")


class KubeSim(TlsServer):
    def __init__(
        self,
        options: Options | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        super().__init__(host=host, port=port, state_dir=state_dir, prefix="provisiond-kube-sim-")
        self.cluster = KubeCluster(options)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._own_thread: threading.Thread | None = None
        self._stoppers: list[Callable[[], None]] = []  # run on the loop at stop (link tasks …)
        self.link: Link | None = None  # set by ``start_linked``

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> KubeSim:
        """Listen; on ``loop`` (already running in another thread) or on a new thread."""
        ctx = self._tls_context()
        if loop is None:
            loop = asyncio.new_event_loop()
            self._own_thread = threading.Thread(
                target=loop.run_forever, name="kube-sim", daemon=True
            )
            self._own_thread.start()
        self.loop = loop
        asyncio.run_coroutine_threadsafe(self._serve(ctx), loop).result(30)
        return self

    async def _serve(self, ctx: ssl.SSLContext) -> None:
        await self._listen(build_app(self.cluster, f"{self.host}:{self.port}"), ctx)

    async def _shutdown(self) -> None:
        for stop in self._stoppers:
            stop()
        self.cluster.pods.cancel()
        self.cluster.store.end_watches()
        await self._close(self.cluster.transports)

    def stop(self) -> None:
        """Stop serving (before the Proxmox simulator, when linked to it)."""
        if self.loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a loop already stopped by its owner
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
        if self._own_thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._own_thread.join(30)
            self.loop.close()
            self._own_thread = None
        self.loop = None
        self._remove_state_dir()

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop when the simulator stops (before it stops serving)."""
        self._stoppers.append(fn)

    def __enter__(self) -> KubeSim:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- connection ------------------------------------------------------------------------
    @property
    def token(self) -> str:
        return self.cluster.token

    def kubeconfig(self) -> Obj:
        """A kubeconfig (CA embedded, bearer token) for this server."""
        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "provisiond-sim",
                    "cluster": {"server": self.url, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "provisiond-sim", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "provisiond-sim",
                    "context": {
                        "cluster": "provisiond-sim",
                        "user": "provisiond-sim",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "provisiond-sim",
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path | str) -> Path:
        """Write the kubeconfig (JSON, which is YAML) with mode 0600; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(self.kubeconfig(), indent=2) + "\n", encoding="utf-8")
        return path

    # -- state -----------------------------------------------------------------------------
    def call(self, fn: Callable[[KubeCluster], T], timeout: float = 10.0) -> T:
        """Run ``fn(cluster)`` on the simulator loop and return its result."""
        assert self.loop is not None, "start() first"

        async def run() -> T:
            return fn(self.cluster)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def get(self, bucket: str, name: str, namespace: str = "") -> Obj | None:
        """A stored object (``nodes``, ``pods``, ``poddisruptionbudgets``, ``leases``…)."""
        return self.call(lambda c: c.store.get(bucket, namespace, name))

    def objects(self, bucket: str, namespace: str | None = None) -> list[Obj]:
        return self.call(lambda c: c.store.all(bucket, namespace))

    def resource_version(self) -> int:
        return self.call(lambda c: c.store.rv)

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests served per (verb, resource label), e.g. ``("patch", "nodes")``."""
        return self.call(lambda c: dict(c.counts))

    def nodes_summary(self) -> list[dict[str, Any]]:
        """Every Node for the demo's table and JSON: name, vm (the VMID, None for a node not
        made by the Proxmox link), ready, unschedulable, labels,
        taints as ``key=value:Effect`` (``key:Effect`` without a value)."""
        return self.call(
            lambda c: [
                summarise(n, c.machines.get(n["metadata"]["name"])) for n in c.store.all("nodes")
            ]
        )

    def create(self, plural: str, obj: Obj, namespace: str = "default", group: str = "") -> Obj:
        """Create through the REST layer (validated), as a client would; ``group`` for
        non-core kinds (``policy``, ``coordination.k8s.io``, ``apps``)."""
        r = next(x for x in RESOURCES if (x.group, x.plural) == (group, plural))
        ns = namespace if r.namespaced else ""
        return self.call(lambda c: c.registry.create(r, ns, obj))

    def add_node(self, name: str, **kwargs: Any) -> Obj:
        """Register a Node as a kubelet does (``nodes.node_object`` keyword arguments)."""
        return self.create("nodes", nodes.node_object(name, **kwargs))

    def set_node_ready(self, name: str, status: str = "True") -> Obj:
        """The kubelet (True/False) or the lifecycle controller (Unknown) updates Ready."""

        def run(c: KubeCluster) -> Obj:
            node = c.store.get("nodes", "", name)
            assert node is not None, f"no node {name}"
            nodes.set_ready(node, status)
            return c.store.replace("nodes", node)

        return self.call(run)

    # -- faults ----------------------------------------------------------------------------
    def inject(self, resource: str = "*", **rule: Any) -> None:
        """Add a request fault (``faults.KubeFault``): ``status=503``, ``latency=0.5``, with
        ``verb``, ``rate``, ``times``, ``when``, ``message``, ``retry_after``."""
        fault = KubeFault(resource=resource, **rule)
        self.call(lambda c: c.faults.add(fault))

    def clear_faults(self) -> None:
        self.call(lambda c: c.faults.clear())

    def fault_counts(self) -> dict[tuple[str, str, str], int]:
        return self.call(lambda c: dict(c.faults.injected))

    def drop_watches(self, *, abort: bool = True) -> int:
        """End every open watch: drop the connection (``abort``) or end the body cleanly."""
        return self.call(lambda c: c.store.end_watches(abort=abort))

    def expire_watches(self) -> int:
        """Compact the history and end every open watch with ERROR 410 Expired (what a client
        sees when its watch falls too far behind); a resume from the old revision is 410 too."""

        def run(c: KubeCluster) -> int:
            upto = c.store.compact()
            message = f"too old resource version: {max(upto - 1, 0)} ({upto})"
            return c.store.end_watches(expired(message).status())

        return self.call(run)

    def compact(self, upto: int | None = None) -> int:
        """Forget watch history up to ``upto`` (default: now); returns the compacted revision."""
        return self.call(lambda c: c.store.compact(upto))

    def set_bookmark_interval(self, seconds: float) -> None:
        self.call(lambda c: setattr(c.options, "bookmark_interval", seconds))


def taint_text(taint: Obj) -> str:
    value = taint.get("value")
    key = f"{taint.get('key', '')}={value}" if value else str(taint.get("key", ""))
    return f"{key}:{taint.get('effect', '')}"


def summarise(node: Obj, vmid: int | None) -> dict[str, Any]:
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )
    return {
        "name": meta.get("name", ""),
        "vm": vmid,
        "ready": ready,
        "unschedulable": bool(spec.get("unschedulable", False)),
        "labels": dict(meta.get("labels") or {}),
        "taints": [taint_text(t) for t in spec.get("taints") or []],
    }
