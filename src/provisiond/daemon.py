"""Assembly of the reconcile daemon from settings: executor, reconciler, spec watcher, manager.

Used by ``run``, ``apply`` and ``demo``; builds on ``app`` (which knows the adapters). Holds no
state of its own: everything is created per call and handed back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from provisiond import app
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.specsource import SpecFiles
from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as core_plan
from provisiond.logging import configure_logging
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.manager import Manager, Runnable
from provisiond.runtime.reconciler import CycleListener, Reconciler
from provisiond.runtime.results import ActionListener
from provisiond.runtime.specwatch import SpecWatcher
from provisiond.settings import Settings, load_settings

log = structlog.get_logger("provisiond.daemon")


def planner(
    clock: Callable[[], float] = time.time,
) -> Callable[[DesiredState, ObservedState], Plan]:
    """The pure planner with the wall clock plugged in (the planner never reads a clock)."""

    def plan(desired: DesiredState, observed: ObservedState) -> Plan:
        return core_plan(desired, observed, now=clock())

    return plan


def executor_config(time_scale: float = 1.0) -> ExecutorConfig:
    """Task polling for real Proxmox (``time_scale=1``) or a sped-up simulator."""
    if time_scale >= 1.0:
        return ExecutorConfig()
    return ExecutorConfig(
        poll_initial=max(0.005, 0.5 * time_scale),
        poll_max=max(0.01, 1.0 * time_scale),
        retry_initial=max(0.01, 0.5 * time_scale),
        retry_max=max(0.1, 10.0 * time_scale),
        backoff_base=max(0.2, 5.0 * time_scale),
        backoff_max=max(2.0, 300.0 * time_scale),
        requeue_after=max(0.2, 10.0 * time_scale),
    )


@dataclass(slots=True)
class Daemon:
    parts: app.ProxmoxParts
    executor: Executor
    reconciler: Reconciler
    watcher: SpecWatcher
    metrics: Metrics

    def close(self) -> None:
        self.parts.close()


def build_daemon(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    action_listener: ActionListener | None = None,
    cycle_listener: CycleListener | None = None,
    time_scale: float = 1.0,
    follow_up: float = 2.0,
    debounce: float = 0.1,
    watch_interval: float = 0.5,
) -> Daemon:
    metrics = metrics or app.build_metrics()
    parts = app.build_proxmox(app.proxmox_connection(settings), settings, metrics)
    executor = Executor(
        parts.observer,
        parts.actions,
        config=executor_config(time_scale),
        listener=action_listener,
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
        listener=cycle_listener,
    )
    watcher = SpecWatcher(reconciler, interval=watch_interval)
    return Daemon(parts, executor, reconciler, watcher, metrics)


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
            note="proxmox connection changes need a restart",
        )

    return reload


def manager(
    daemon: Daemon,
    *,
    on_reload: Callable[[], None] | None = None,
    extra: Sequence[Runnable] = (),
) -> Manager:
    return Manager(
        [daemon.reconciler, daemon.watcher, *extra],
        shutdown_timeout=25.0,
        on_reload=(on_reload,) if on_reload is not None else (),
    )


def overrides_from(
    *, spec: list[str] | None = None, read_only: bool = False, interval: float | None = None
) -> dict[str, Any]:
    """CLI values as settings overrides (highest precedence); only what was given."""
    out: dict[str, Any] = {}
    if spec:
        out["spec"] = {"paths": [Path(p) for p in spec]}
    daemon: dict[str, Any] = {}
    if read_only:
        daemon["read_only"] = True
    if interval is not None:
        daemon["interval"] = interval
    if daemon:
        out["daemon"] = daemon
    return out
