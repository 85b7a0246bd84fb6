"""Wiring: builds the daemon from settings — ports → adapters → runtime. The only module that
knows the concrete adapters; nothing in ``core``, ``adapters`` or ``runtime`` imports it.

Used by the CLI's ``plan`` (the Proxmox parts only), ``apply``, ``run`` and ``demo``. No
singletons: every builder returns fresh objects (the metrics registry included) and holds no
state of its own.

What hears the runtime (``runtime.listeners.Listeners`` fans the executor's and the
reconciler's one listener out, in this order): ``adapters.telemetry.Telemetry`` (metrics and
health), MQTT's ``EventFeed`` when MQTT is on, then the CLI's listener (progress). The Proxmox
client reports each request to telemetry, the writer each task's duration to the metrics. The
manager runs the reconciler, the spec watcher, and — when enabled — the HTTP endpoint
(``/metrics``, ``/healthz``, ``/readyz``) and the MQTT publisher, whose commands reach the
reconciler through ``ReconcilerCommands``.

Leader election (``leader_election.*``, on when Kubernetes is configured; only for ``run`` and
``demo``, which run the manager): the elector (``runtime.leader``) runs beside them; the
``Fence`` it answers guards every mutating Proxmox request; the reconciler plans as a standby
but executes only through ``may_act``; a new leader triggers a cycle at once; the transitions
feed ``leader_election_master_status{name}``, MQTT's ``leadership_changed`` event, status
``role`` and who owns ``P/status`` (each replica reports itself under ``P/instances/<identity>``;
only the leader publishes events — docs/mqtt.md, Replicas), and the MQTT ``reconcile`` command
obeys only the leader. Without election, ``run``
holds ``InstanceLock`` in ``daemon.state_dir``: one daemon per machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from provisiond import __version__
from provisiond.adapters.cluster_view import ClusterView
from provisiond.adapters.health import Health
from provisiond.adapters.httpserver import MetricsServer
from provisiond.adapters.instance_lock import InstanceLock
from provisiond.adapters.kube import KubeCalls, connection_source, kube_api
from provisiond.adapters.kube_lease import KubeLease, pod_namespace
from provisiond.adapters.kube_nodes import NodeCache, NodeWatch
from provisiond.adapters.kube_pods import NodesAndPods
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_commands import ReconcilerCommands
from provisiond.adapters.mqtt_events import EventFeed
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection, RequestObserver
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.adapters.sdnotify import SystemdNotifier
from provisiond.adapters.specsource import SpecFiles
from provisiond.adapters.telemetry import Telemetry
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ConfigError, ProvisiondError
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as core_plan
from provisiond.core.privileges import missing, needed
from provisiond.logging import configure_logging
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.fence import Fence
from provisiond.runtime.leader import JITTER, ElectionConfig, LeaderElector
from provisiond.runtime.listeners import Listeners
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
    conn: ProxmoxConnection,
    settings: Settings,
    *,
    on_request: RequestObserver | None = None,
    on_task: Callable[[str, float], None] | None = None,
    fence: Fence | None = None,
) -> ProxmoxParts:
    """The client, observer and writer; ``on_request``/``on_task`` report to the metrics;
    ``fence`` guards every mutating request (leader election)."""
    client = ProxmoxClient(
        conn, on_request=on_request, guard=fence.sending if fence is not None else None
    )
    observer = ProxmoxObserver(
        client, cache_ttl=settings.daemon.cache_ttl, self_vmid=settings.daemon.self_vmid
    )
    actions = ProxmoxActions(
        client,
        invalidate=observer.invalidate,
        invalidate_rules=observer.invalidate_rules,
        on_task=on_task,
    )
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


# -- Kubernetes: the nodes in the VMs (docs/kubernetes.md) ---------------------------------------


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
    """The daemon's pieces. ``server``, ``mqtt`` and ``election`` are set when enabled and asked
    for (``services``); ``manager`` runs them beside the reconciler and the spec watcher."""

    parts: ProxmoxParts
    executor: Executor
    reconciler: Reconciler
    watcher: SpecWatcher
    metrics: Metrics
    health: Health
    telemetry: Telemetry
    observer: ClusterView  # Proxmox + Kubernetes
    server: MetricsServer | None = None
    mqtt: MqttPublisher | None = None
    commands: ReconcilerCommands | None = None
    kube: KubeParts | None = None
    node_watch: NodeWatch | None = None
    fence: Fence | None = None
    election: Election | None = None  # None: leader election off (one daemon per machine)

    def runnables(self) -> list[Runnable]:
        services: list[Runnable | None] = [self.election, self.server, self.mqtt, self.node_watch]
        return [self.reconciler, self.watcher, *(r for r in services if r is not None)]

    def close(self) -> None:
        self.parts.close()

    async def aclose(self) -> None:
        """``close`` plus the Kubernetes client (for callers that run their own loop)."""
        if self.kube is not None:
            await self.kube.aclose()
        self.close()


def _publisher(settings: Settings, metrics: Metrics, election: Election | None) -> MqttPublisher:
    """The MQTT publisher; its connection state and dropped events feed the metrics. With leader
    election it reports the replica on ``P/instances/<identity>/…`` and owns ``P/status`` while
    it leads (docs/mqtt.md): the handover waits for the standby's next retry, and a stop waits
    for the elector's drain and release first."""
    replica: dict[str, Any] = {}
    if election is not None:
        le = settings.leader_election
        replica = {
            "instance": election.elector.config.identity,
            "may_claim": election.elector.may_act,
            "handover_wait": JITTER * le.retry_period + 2.0,
            "release_wait": le.release_timeout + 2 * le.retry_period + 2.0,
        }
    try:
        return MqttPublisher(
            settings.mqtt,
            prefix=settings.mqtt.prefix(settings.cluster_name()),
            secrets=settings.secret_values(),
            on_connected=metrics.set_mqtt_connected,
            on_drop=metrics.mqtt_event_dropped,
            **replica,
        )
    except (OSError, ssl.SSLError) as exc:  # the CA, certificate or key file
        raise ConfigError(f"mqtt: cannot load the TLS files: {exc}") from None


def build_daemon(
    settings: Settings,
    *,
    action_listener: ActionListener | None = None,
    cycle_listener: CycleListener | None = None,
    services: bool = True,
    follow_up: float = 2.0,
    debounce: float = 0.1,
    watch_interval: float = 0.5,
) -> Daemon:
    """Everything ``run`` and ``demo`` run. The metrics (one fresh ``CollectorRegistry``) and
    health always follow the runtime; with ``services`` (``run``, ``demo``; not ``apply``, which
    acts once and serves nothing) the HTTP endpoint is built when ``metrics.enabled`` and the
    MQTT publisher when ``mqtt.url`` is set, and the leader elector when leader election is on
    (``apply`` has none: it acts once, as asked). ``action_listener``/``cycle_listener`` (the
    CLI's progress) hear every event after telemetry and MQTT."""
    metrics = Metrics(
        CollectorRegistry(auto_describe=True),
        version=__version__,
        mqtt=services and settings.mqtt.enabled,
    )
    box: list[Reconciler] = []  # the health check reads the interval SIGHUP may change
    health = Health(interval=lambda: box[0].interval if box else settings.daemon.interval)
    telemetry = Telemetry(metrics, health)
    elect = services and election_enabled(settings)
    election = build_election(settings, metrics) if elect else None
    fence = Fence(election.elector.may_act if election is not None else lambda: True)
    if election is not None:
        election.elector.set_drain(fence.drained)
    parts = build_proxmox(
        proxmox_connection(settings),
        settings,
        on_request=telemetry.proxmox_request,
        on_task=metrics.observe_proxmox_task,
        fence=fence,
    )
    mqtt = services and settings.mqtt.enabled
    publisher = _publisher(settings, metrics, election) if mqtt else None
    feed: list[EventFeed] = []
    if publisher is not None and election is not None:  # replicas: only the leader's events
        feed.append(
            EventFeed(publisher, publishing=election.is_leader, identity=publisher.instance)
        )
        election.elector.subscribe(_leadership_events(publisher, feed[0], leading=False))
    elif publisher is not None:
        feed.append(EventFeed(publisher))
    listeners = Listeners(
        actions=[telemetry, *feed, *([action_listener] if action_listener else [])],
        cycles=[telemetry, *feed, *([cycle_listener] if cycle_listener else [])],
    )
    kube = build_kube(settings, metrics, fence)
    observer = ClusterView(parts.observer, kube.nodes if kube is not None else None)
    executor = Executor(
        observer,
        parts.actions,
        config=executor_config(settings.executor),
        listener=listeners,
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
        listener=listeners,
        may_act=election.elector.may_act if election is not None else None,
    )
    box.append(reconciler)
    if election is not None:  # a new leader acts at once, not after the standby's interval
        election.elector.subscribe(
            lambda leader: reconciler.trigger("leader_acquired") if leader else None
        )
    commands = None
    if publisher is not None:
        commands = ReconcilerCommands(
            reconciler, leader=election.is_leader if election is not None else lambda: True
        )
        publisher.set_commands(commands)
    server = None
    if services and settings.metrics.enabled:
        server = MetricsServer(metrics.registry, health, bind=settings.metrics.bind)
    watcher = SpecWatcher(reconciler, interval=watch_interval)
    watch = node_watch(kube, settings, reconciler) if kube is not None else None
    return Daemon(
        parts,
        executor,
        reconciler,
        watcher,
        metrics,
        health,
        telemetry,
        observer,
        server=server,
        mqtt=publisher,
        commands=commands,
        kube=kube,
        node_watch=watch,
        fence=fence,
        election=election,
    )


def _leadership_events(
    publisher: MqttPublisher, feed: EventFeed, *, leading: bool
) -> Callable[[bool], None]:
    """The elector's hook for MQTT: the publisher's role (who owns ``P/status``), and a
    ``leadership_changed`` event on each real change — the elector also reports "standby" when
    it starts, which is no change."""
    last = [leading]

    def changed(leader: bool) -> None:
        publisher.set_leader(leader)
        if leader != last[0]:
            last[0] = leader
            feed.leadership_changed(leader=leader)

    return changed


def reload_hook(
    daemon: Daemon, config_file: Path | None, overrides: dict[str, Any]
) -> Callable[[], None]:
    """SIGHUP: re-read the settings; apply what can change live, reload the spec.

    The read-only mode goes through the MQTT commands when there are any, so a reload keeps an
    MQTT pause in force."""

    def reload() -> None:
        try:
            new = load_settings(config_file, overrides)
        except Exception as exc:  # noqa: BLE001 - a bad settings file must not stop the daemon
            log.error("settings_reload_failed", error=str(exc))
            daemon.reconciler.reload()
            return
        configure_logging(fmt=new.log.format, level=new.log.level, secrets=new.secret_values())
        daemon.reconciler.interval = new.daemon.interval
        if daemon.commands is not None:
            daemon.commands.set_configured_read_only(new.daemon.read_only)
        else:
            daemon.reconciler.read_only = new.daemon.read_only
        spec = SpecFiles(new.spec.paths)
        daemon.reconciler.reload(spec)
        log.info(
            "settings_reloaded",
            interval=new.daemon.interval,
            read_only=new.daemon.read_only,
            spec=[str(p) for p in new.spec.paths],
            note="proxmox, executor, metrics and mqtt changes need a restart",
        )

    return reload


def systemd_notifier(environ: Mapping[str, str]) -> SystemdNotifier | None:
    """The sd_notify speaker when run by systemd (``$NOTIFY_SOCKET``): ``run`` passes it to
    ``build_daemon`` as the cycle listener (READY, STATUS) and to ``manager``."""
    return SystemdNotifier.from_environ(environ)


def manager(
    daemon: Daemon,
    *,
    on_reload: Callable[[], None] | None = None,
    extra: Sequence[Runnable] = (),
    notifier: SystemdNotifier | None = None,
) -> Manager:
    """The reconciler, the spec watcher, the elector, the metrics endpoint and MQTT when built,
    ``extra``; with ``notifier`` (systemd), its WATCHDOG/STOPPING runnable — the watchdog pings
    only while the health check says the loop is live — and RELOADING … READY around the reload
    hook. The Kubernetes client is closed after every runnable has returned."""
    if notifier is not None:
        notifier.alive = lambda: daemon.health.live()[0]
        extra = [*extra, notifier]
        on_reload = notifier.reloading(on_reload) if on_reload is not None else None
    return Manager(
        [*daemon.runnables(), *extra],
        shutdown_timeout=25.0,
        on_reload=(on_reload,) if on_reload is not None else (),
        # the Kubernetes client lives on the manager's loop; closed once no action can use it
        closers=(daemon.kube.aclose,) if daemon.kube is not None else (),
    )


# -- leader election, or one daemon per machine (issue 17) --------------------------------------


def kubernetes_configured(settings: Settings) -> bool:
    """``kubernetes.enabled`` and a kubeconfig in the settings or ``$KUBECONFIG``, or running in
    a pod (the same rule as the node adapters: ``adapters.kube.connection_source``)."""
    return not isinstance(connection_source(settings.kubernetes), str)


def election_enabled(settings: Settings) -> bool:
    enabled = settings.leader_election.enabled
    return kubernetes_configured(settings) if enabled is None else enabled


def election_identity() -> str:
    """The pod's name (``POD_NAME`` from the downward API), else ``<hostname>_<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def state_dir(settings: Settings) -> Path:
    if settings.daemon.state_dir is not None:
        return settings.daemon.state_dir
    systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(systemd) if systemd else Path("/var/lib/provisiond")


def instance_lock(settings: Settings) -> InstanceLock | None:
    """Without leader election: the lock that keeps a second daemon on this machine out
    (``acquire`` raises ``ConfigError`` naming the holder). None when election is on."""
    return None if election_enabled(settings) else InstanceLock(state_dir(settings))


@dataclass(slots=True)
class Election:
    """The elector as a manager runnable: it owns the Lease client and closes it."""

    elector: LeaderElector
    lease: KubeLease
    name: str = "leader-election"

    def is_leader(self) -> bool:
        """Leadership as the elector's state machine stands (MQTT status and commands)."""
        return self.elector.is_leader

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.elector.run(stop)
        finally:
            await self.lease.close()


def build_election(settings: Settings, metrics: Metrics | None = None) -> Election:
    """The elector on its Lease; ``metrics`` gets ``leader_election_master_status{name}``: 0
    from the start (a standby), 1 while leading."""
    le = settings.leader_election
    namespace = le.namespace or pod_namespace() or "default"
    lease = KubeLease(
        name=le.name,
        namespace=namespace,
        kubeconfig=settings.kubernetes.kubeconfig,
        context=settings.kubernetes.context,
        request_timeout=max(1.0, le.retry_period),
    )
    config = ElectionConfig(
        identity=election_identity(),
        name=le.name,
        namespace=namespace,
        lease_duration=le.lease_duration,
        renew_deadline=le.renew_deadline,
        retry_period=le.retry_period,
        release_timeout=le.release_timeout,
    )
    hooks: list[Callable[[bool], None]] = []
    if metrics is not None:
        metrics.set_leader(le.name, leader=False)
        hooks.append(lambda leader: metrics.set_leader(le.name, leader=leader))
    return Election(LeaderElector(lease, config, on_change=hooks), lease)
