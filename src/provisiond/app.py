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
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from provisiond import __version__
from provisiond.adapters.health import Health
from provisiond.adapters.httpserver import MetricsServer
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_commands import ReconcilerCommands
from provisiond.adapters.mqtt_events import EventFeed
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection, RequestObserver
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
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
) -> ProxmoxParts:
    """The client, observer and writer; ``on_request``/``on_task`` report to the metrics."""
    client = ProxmoxClient(conn, on_request=on_request)
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


# -- the daemon: executor, reconciler, spec watcher, manager -----------------------------------


def planner(
    clock: Callable[[], float] = time.time,
) -> Callable[[DesiredState, ObservedState], Plan]:
    """The pure planner with the wall clock plugged in (the planner never reads a clock)."""

    def plan(desired: DesiredState, observed: ObservedState) -> Plan:
        return core_plan(desired, observed, now=clock())

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
    """The daemon's pieces. ``server`` and ``mqtt`` are set when enabled and asked for
    (``services``); ``manager`` runs them beside the reconciler and the spec watcher."""

    parts: ProxmoxParts
    executor: Executor
    reconciler: Reconciler
    watcher: SpecWatcher
    metrics: Metrics
    health: Health
    telemetry: Telemetry
    server: MetricsServer | None = None
    mqtt: MqttPublisher | None = None
    commands: ReconcilerCommands | None = None

    def runnables(self) -> list[Runnable]:
        services: list[Runnable | None] = [self.server, self.mqtt]
        return [self.reconciler, self.watcher, *(r for r in services if r is not None)]

    def close(self) -> None:
        self.parts.close()


def _publisher(settings: Settings, metrics: Metrics) -> MqttPublisher:
    """The MQTT publisher; its connection state and dropped events feed the metrics."""
    try:
        return MqttPublisher(
            settings.mqtt,
            prefix=settings.mqtt.prefix(settings.cluster_name()),
            secrets=settings.secret_values(),
            on_connected=metrics.set_mqtt_connected,
            on_drop=metrics.mqtt_event_dropped,
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
    MQTT publisher when ``mqtt.url`` is set. ``action_listener``/``cycle_listener`` (the CLI's
    progress) hear every event after telemetry and MQTT."""
    metrics = Metrics(
        CollectorRegistry(auto_describe=True),
        version=__version__,
        mqtt=services and settings.mqtt.enabled,
    )
    box: list[Reconciler] = []  # the health check reads the interval SIGHUP may change
    health = Health(interval=lambda: box[0].interval if box else settings.daemon.interval)
    telemetry = Telemetry(metrics, health)
    parts = build_proxmox(
        proxmox_connection(settings),
        settings,
        on_request=telemetry.proxmox_request,
        on_task=metrics.observe_proxmox_task,
    )
    publisher = _publisher(settings, metrics) if services and settings.mqtt.enabled else None
    feed = [EventFeed(publisher)] if publisher is not None else []
    listeners = Listeners(
        actions=[telemetry, *feed, *([action_listener] if action_listener else [])],
        cycles=[telemetry, *feed, *([cycle_listener] if cycle_listener else [])],
    )
    executor = Executor(
        parts.observer,
        parts.actions,
        config=executor_config(settings.executor),
        listener=listeners,
    )
    reconciler = Reconciler(
        SpecFiles(settings.spec.paths),
        parts.observer,
        executor,
        planner(),
        interval=settings.daemon.interval,
        follow_up=follow_up,
        debounce=debounce,
        read_only=settings.daemon.read_only,
        listener=listeners,
    )
    box.append(reconciler)
    commands = None
    if publisher is not None:
        commands = ReconcilerCommands(reconciler)  # no leader election yet: always the leader
        publisher.set_commands(commands)
    server = None
    if services and settings.metrics.enabled:
        server = MetricsServer(metrics.registry, health, bind=settings.metrics.bind)
    watcher = SpecWatcher(reconciler, interval=watch_interval)
    return Daemon(
        parts,
        executor,
        reconciler,
        watcher,
        metrics,
        health,
        telemetry,
        server=server,
        mqtt=publisher,
        commands=commands,
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
) -> Manager:
    """The reconciler, the spec watcher, the metrics endpoint and MQTT when built, ``extra``."""
    return Manager(
        [*daemon.runnables(), *extra],
        shutdown_timeout=25.0,
        on_reload=(on_reload,) if on_reload is not None else (),
    )
