"""Wiring, the daemon's assembly: the planner with a clock, the executor's settings, ``Daemon``
(every piece ``run`` and ``demo`` run), ``build_daemon``, the SIGHUP reload hook and the
manager that runs it all. The order of the listeners and of the runnables is documented in
the package's docstring (``provisiond.app``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from provisiond import __version__
from provisiond.adapters.cluster_view import ClusterView
from provisiond.adapters.health import Health
from provisiond.adapters.httpserver import MetricsServer
from provisiond.adapters.kube_nodes import NodeWatch
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_commands import ReconcilerCommands
from provisiond.adapters.mqtt_events import EventFeed
from provisiond.adapters.sdnotify import SystemdNotifier
from provisiond.adapters.specsource import SpecFiles
from provisiond.adapters.telemetry import Telemetry
from provisiond.app.election import Election, build_election, election_enabled
from provisiond.app.kube import KubeParts, build_kube, node_watch
from provisiond.app.proxmox import ProxmoxParts, build_proxmox, proxmox_connection
from provisiond.app.services import leadership_events, mqtt_publisher
from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as core_plan
from provisiond.logging import configure_logging
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.fence import Fence
from provisiond.runtime.listeners import Listeners
from provisiond.runtime.manager import Manager, Runnable
from provisiond.runtime.reconciler import CycleListener, Reconciler
from provisiond.runtime.results import ActionListener
from provisiond.runtime.specwatch import SpecWatcher
from provisiond.settings import ExecutorSettings, Settings, load_settings

log = structlog.get_logger("provisiond.app")


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
    publisher = mqtt_publisher(settings, metrics, election) if mqtt else None
    feed: list[EventFeed] = []
    if publisher is not None and election is not None:  # replicas: only the leader's events
        feed.append(
            EventFeed(publisher, publishing=election.is_leader, identity=publisher.instance)
        )
        election.elector.subscribe(leadership_events(publisher, feed[0], leading=False))
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
