"""Wiring: builds the daemon from settings — ports → adapters → runtime. The only module that
knows the concrete adapters; nothing in ``core``, ``adapters`` or ``runtime`` imports it.

Used by the CLI's ``plan`` (the Proxmox parts only), ``apply``, ``run`` and ``demo``. No
singletons: every builder returns fresh objects (the metrics registry included) and holds no
state of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from provisiond.adapters.cluster_view import ClusterView
from provisiond.adapters.kube import KubeCalls, connection_source, kube_api
from provisiond.adapters.kube_nodes import NodeCache, NodeWatch
from provisiond.adapters.kube_pods import NodesAndPods
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.adapters.specsource import SpecFiles
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ConfigError, ProvisiondError
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as core_plan
from provisiond.core.privileges import missing, needed
from provisiond.logging import configure_logging
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.manager import Manager, Runnable
from provisiond.runtime.reconciler import CycleListener, Reconciler
from provisiond.runtime.results import ActionListener
from provisiond.runtime.specwatch import SpecWatcher
from provisiond.settings import ExecutorSettings, Settings, load_settings

log = structlog.get_logger("provisiond.app")

# -- Proxmox: connection, client, observer, writer ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxmoxParts:
    client: ProxmoxClient
    observer: ProxmoxObserver
    actions: ProxmoxActions

    def close(self) -> None:
        self.client.close()


def _credentials(settings: Settings) -> tuple[str | None, str | None, list[str]]:
    """(identity, secret, the settings still needed): a token, else a user and password."""
    px = settings.proxmox
    need = ["proxmox.url"] if px.url is None else []
    if px.token_id is not None:
        secret = px.token_secret.get_secret_value() if px.token_secret else None
        return px.token_id, secret, need + ([] if secret is not None else ["proxmox.token_secret"])
    if px.user is not None:
        secret = px.password.get_secret_value() if px.password else None
        return px.user, secret, need + ([] if secret is not None else ["proxmox.password"])
    return (
        None,
        None,
        [*need, "proxmox.token_id and proxmox.token_secret (or proxmox.user and password)"],
    )


def proxmox_connection(settings: Settings) -> ProxmoxConnection:
    """The connection settings, checked: a clear error names what is missing."""
    px = settings.proxmox
    identity, secret, need = _credentials(settings)
    if need or px.url is None or identity is None or secret is None:
        raise ConfigError(
            "cannot reach Proxmox: set "
            + ", ".join(need)
            + " (settings file, PROVISIOND_PROXMOX__* environment, or a secret file/credential)"
        )
    return ProxmoxConnection(
        url=px.url,
        identity=identity,
        secret=secret,
        verify=str(px.ca_bundle) if px.ca_bundle is not None else px.verify_tls,
        connect_timeout=px.connect_timeout,
        read_timeout=px.read_timeout,
        max_concurrent=px.max_concurrent_requests,
    )


def build_proxmox(
    conn: ProxmoxConnection, settings: Settings, metrics: Metrics | None = None
) -> ProxmoxParts:
    client = ProxmoxClient(
        conn, on_request=metrics.observe_proxmox_request if metrics is not None else None
    )
    observer = ProxmoxObserver(
        client, cache_ttl=settings.daemon.cache_ttl, self_vmid=settings.daemon.self_vmid
    )
    actions = ProxmoxActions(client, invalidate=observer.invalidate)
    return ProxmoxParts(client=client, observer=observer, actions=actions)


async def privilege_problems(
    parts: ProxmoxParts, desired: DesiredState, observed: ObservedState
) -> tuple[list[str], list[str]]:
    """(lacking, unknown): each privilege the fleet needs but the token lacks, as a sentence,
    and why the check could not be made (the privileges were unreadable).

    ``plan`` shows both as warnings; ``apply`` refuses on ``lacking`` and warns on ``unknown``
    (the API still enforces every privilege: an unreadable list is no reason to stop).
    """
    try:
        granted = await parts.observer.permissions()
    except ProvisiondError as exc:
        return [], [f"could not read the token's privileges (GET /access/permissions): {exc}"]
    pools = {vm.vmid: vm.proxmox_pool for vm in desired.all_vms() if vm.proxmox_pool}
    lacking = missing(needed(desired, observed), granted, pools)
    who = parts.client.identity
    who = f"token {who}" if "!" in who else f"user {who}"
    return [n.describe(who) for n in lacking], []


def build_metrics() -> Metrics:
    return Metrics(CollectorRegistry(auto_describe=True))


# -- Kubernetes: the nodes in the VMs (docs/kubernetes.md) ---------------------------------------


@dataclass(slots=True)
class KubeParts:
    calls: KubeCalls
    nodes: NodesAndPods  # KubeReader + KubeWriter (nodes, and pods for drains)
    cache: NodeCache  # the node watch's copy, read by ``nodes`` while in sync

    async def aclose(self) -> None:
        await self.calls.close()


def build_kube(settings: Settings, metrics: Metrics | None = None) -> KubeParts | None:
    """The Kubernetes adapters, or ``None`` (logged with why) when Kubernetes is off. The
    ApiClient is made on first use: loading a kubeconfig is a coroutine."""
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


class _KubeClientCloser:
    """Closes the Kubernetes client when the daemon stops (it lives on the daemon's loop)."""

    name = "kube-client"

    def __init__(self, kube: KubeParts) -> None:
        self._kube = kube

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
        await self._kube.aclose()


async def observe_all(settings: Settings, parts: ProxmoxParts) -> ObservedState:
    """One observation of Proxmox and (when configured) Kubernetes, for ``plan``."""
    kube = build_kube(settings)
    try:
        return await ClusterView(parts.observer, kube.nodes if kube else None).observe()
    finally:
        if kube is not None:
            await kube.aclose()


# -- the daemon: executor, reconciler, spec watcher, manager -----------------------------------


def planner(
    clock: Callable[[], float] = time.time,
    *,
    node_join_timeout: float = 900.0,
) -> Callable[[DesiredState, ObservedState], Plan]:
    """The pure planner with the wall clock plugged in (the planner never reads a clock)."""

    def plan(desired: DesiredState, observed: ObservedState) -> Plan:
        return core_plan(desired, observed, now=clock(), node_join_timeout=node_join_timeout)

    return plan


def executor_config(executor: ExecutorSettings) -> ExecutorConfig:
    """Task polling, retries and backoff as the ``executor.*`` settings say."""
    return ExecutorConfig(
        poll_initial=executor.task_poll_interval,
        poll_max=executor.task_poll_max,
        retry_initial=executor.retry_initial,
        retry_max=executor.retry_max,
        backoff_base=executor.backoff_base,
        backoff_max=executor.backoff_max,
        requeue_after=executor.requeue_after,
    )


@dataclass(slots=True)
class Daemon:
    parts: ProxmoxParts
    executor: Executor
    reconciler: Reconciler
    watcher: SpecWatcher
    metrics: Metrics
    observer: ClusterView  # Proxmox + Kubernetes
    kube: KubeParts | None = None
    node_watch: NodeWatch | None = None

    def close(self) -> None:
        self.parts.close()

    async def aclose(self) -> None:
        """``close`` plus the Kubernetes client (for callers that run their own loop)."""
        if self.kube is not None:
            await self.kube.aclose()
        self.close()


def build_daemon(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    action_listener: ActionListener | None = None,
    cycle_listener: CycleListener | None = None,
    follow_up: float = 2.0,
    debounce: float = 0.1,
    watch_interval: float = 0.5,
) -> Daemon:
    metrics = metrics or build_metrics()
    parts = build_proxmox(proxmox_connection(settings), settings, metrics)
    kube = build_kube(settings, metrics)
    observer = ClusterView(parts.observer, kube.nodes if kube is not None else None)
    executor = Executor(
        observer,
        parts.actions,
        config=executor_config(settings.executor),
        listener=action_listener,
        kube_reader=kube.nodes if kube is not None else None,
        kube_writer=kube.nodes if kube is not None else None,
    )
    reconciler = Reconciler(
        SpecFiles(settings.spec.paths),
        observer,
        executor,
        planner(node_join_timeout=settings.kubernetes.node_join_timeout),
        interval=settings.daemon.interval,
        follow_up=follow_up,
        debounce=debounce,
        read_only=settings.daemon.read_only,
        listener=cycle_listener,
    )
    watcher = SpecWatcher(reconciler, interval=watch_interval)
    watch = node_watch(kube, settings, reconciler) if kube is not None else None
    return Daemon(parts, executor, reconciler, watcher, metrics, observer, kube, watch)


def reload_hook(
    daemon: Daemon, config_file: Path | None, overrides: dict[str, Any]
) -> Callable[[], None]:
    """SIGHUP: re-read the settings; apply what can change live, reload the spec."""

    def reload() -> None:
        try:
            new = load_settings(config_file, overrides)
        except Exception as exc:  # noqa: BLE001 - a bad settings file must not stop the daemon
            log.error("settings_reload_failed", error=str(exc))
            daemon.reconciler.reload()
            return
        configure_logging(fmt=new.log.format, level=new.log.level, secrets=new.secret_values())
        daemon.reconciler.interval = new.daemon.interval
        daemon.reconciler.read_only = new.daemon.read_only
        spec = SpecFiles(new.spec.paths)
        daemon.reconciler.reload(spec)
        log.info(
            "settings_reloaded",
            interval=new.daemon.interval,
            read_only=new.daemon.read_only,
            spec=[str(p) for p in new.spec.paths],
            note="proxmox connection and executor changes need a restart",
        )

    return reload


def manager(
    daemon: Daemon,
    *,
    on_reload: Callable[[], None] | None = None,
    extra: Sequence[Runnable] = (),
) -> Manager:
    kube: list[Runnable] = []
    if daemon.node_watch is not None and daemon.kube is not None:
        kube = [daemon.node_watch, _KubeClientCloser(daemon.kube)]
    return Manager(
        [daemon.reconciler, daemon.watcher, *kube, *extra],
        shutdown_timeout=25.0,
        on_reload=(on_reload,) if on_reload is not None else (),
    )
