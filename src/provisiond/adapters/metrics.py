"""provisiond's Prometheus metrics, on a ``CollectorRegistry`` passed in (no global registry).

Names follow DESIGN §9 (controller-runtime's vocabulary, base units, ``_total`` counters); the
full list with meanings is docs/metrics.md, and a test keeps the two equal.

Invariants:
- labels stay bounded: hosts, PCI mappings, action kinds, outcomes, blocked-reason codes,
  endpoint *templates*, HTTP codes, task types — never VMIDs, VM names, Kubernetes node names,
  UPIDs or anything a user typed (tokens and passwords never reach this module);
- every method takes plain values, so any component can report through it without knowing
  prometheus_client; the runtime reaches it through ``adapters.telemetry.Telemetry`` (a listener
  satisfying the runtime's Protocols) and ``set_fleet`` (values derived by ``adapters.gauges``);
- gauges that describe the fleet are replaced as a whole each time (``set_fleet``): a host or
  mapping that disappeared drops out instead of keeping its last value.

All methods are cheap and thread-safe (prometheus_client's own locks): the Proxmox request hook
runs in the client's worker threads.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A cycle is an observation (tens of ms) plus, sometimes, a whole plan's execution (minutes).
_RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
# Actions and Proxmox tasks: a config write is sub-second, a full clone or a migration minutes.
_TASK_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

GPU_STATES = ("free", "claimed", "reserved")
HOST_RESOURCES = ("cpu", "memory")


class ApiMetrics:
    """One external API's request count and latency (``provisiond_<api>_requests_total``,
    ``provisiond_<api>_request_duration_seconds``): the same two families for every API."""

    def __init__(self, api: str, title: str, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            f"provisiond_{api}_requests",
            f"{title} API requests by method, endpoint template and HTTP status (or error).",
            ["method", "endpoint", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            f"provisiond_{api}_request_duration_seconds",
            f"{title} API request latency.",
            ["method", "endpoint"],
            buckets=_API_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, endpoint: str, code: str, seconds: float) -> None:
        self.requests.labels(method, endpoint, code).inc()
        self.duration.labels(method, endpoint).observe(seconds)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry, *, version: str = "0.0.0", mqtt: bool = False
    ) -> None:
        self.registry = registry
        r = registry
        # -- reconcile loop (controller-runtime: controller_runtime_reconcile_*) --------------
        self.reconcile_total = Counter(
            "provisiond_reconcile",
            "Reconcile cycles by result (success, error, requeue).",
            ["result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "provisiond_reconcile_errors", "Reconcile cycles that ended in an error.", registry=r
        )
        self.reconcile_duration = Histogram(
            "provisiond_reconcile_duration_seconds",
            "Duration of a reconcile cycle: observe, plan and execute.",
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "provisiond_last_successful_reconcile_timestamp_seconds",
            "Unix time of the last cycle that ended converged with a complete observation.",
            registry=r,
        )
        self.drift_objects = Gauge(
            "provisiond_drift_objects",
            "Objects that differ from the spec in the last plan, by the kind of correction "
            "(or blocked/conflict when none is allowed).",
            ["kind"],
            registry=r,
        )
        # -- actions ---------------------------------------------------------------------------
        self.actions_total = Counter(
            "provisiond_actions",
            "Executed actions by kind and outcome.",
            ["action", "result"],
            registry=r,
        )
        self.action_duration = Histogram(
            "provisiond_action_duration_seconds",
            "Duration of an action, Proxmox task waits included.",
            ["action"],
            buckets=_TASK_BUCKETS,
            registry=r,
        )
        self.actions_in_flight = Gauge(
            "provisiond_actions_in_flight", "Actions started and not finished yet.", registry=r
        )
        self.destructive_blocked = Counter(
            "provisiond_destructive_actions_blocked",
            "Destructive or disruptive actions a safety guard refused, by guard (per plan).",
            ["reason"],
            registry=r,
        )
        self.action_no_effect = Counter(
            "provisiond_action_no_effect",
            "Actions that succeeded without the expected effect showing (retried with backoff).",
            ["action"],
            registry=r,
        )
        # -- external APIs -----------------------------------------------------------------------
        self.proxmox_api = ApiMetrics("proxmox", "Proxmox VE", r)
        self.proxmox_task_duration = Histogram(
            "provisiond_proxmox_task_duration_seconds",
            "Duration of Proxmox tasks provisiond waited for, by task type (qmclone, qmigrate…).",
            ["type"],
            buckets=_TASK_BUCKETS,
            registry=r,
        )
        self.kubernetes_api = ApiMetrics("kubernetes", "Kubernetes", r)
        # -- spec ----------------------------------------------------------------------------------
        self.spec_valid = Gauge(
            "provisiond_spec_valid",
            "1 when the spec files on disk are valid, 0 while the last good spec is used.",
            registry=r,
        )
        self.spec_load_errors = Counter(
            "provisiond_spec_load_errors",
            "Loads of the spec files that failed validation.",
            registry=r,
        )
        # -- fleet gauges --------------------------------------------------------------------------
        self.gpu_devices = Gauge(
            "provisiond_gpu_devices",
            "GPU devices of each PCI mapping per host: free, claimed by a VM, or reserved by the "
            "plan for a VM on its way.",
            ["host", "mapping", "state"],
            registry=r,
        )
        self.host_allocation = Gauge(
            "provisiond_host_allocation_ratio",
            "vCPUs or memory allocated to VMs on a host over its physical capacity (1 = full).",
            ["host", "resource"],
            registry=r,
        )
        # -- leadership, MQTT ------------------------------------------------------------------
        self.leader = Gauge(
            "leader_election_master_status",
            "1 when this process holds the lease named, 0 when it is a standby.",
            ["name"],
            registry=r,
        )
        # Only when MQTT is configured: an unconfigured broker must not read as "disconnected".
        self.mqtt_connected: Gauge | None = None
        self.mqtt_dropped: Counter | None = None
        if mqtt:
            self.mqtt_connected = Gauge(
                "provisiond_mqtt_connected", "1 while connected to the MQTT broker.", registry=r
            )
            self.mqtt_dropped = Counter(
                "provisiond_mqtt_events_dropped",
                "Events dropped because the buffer for a disconnected broker was full.",
                registry=r,
            )
        # process_start_time_seconds & co.: the "no success since start" alert needs the start.
        ProcessCollector(registry=r)
        self.build_info = Info("provisiond_build", "provisiond's version.", registry=r)
        self.build_info.info({"version": version, "python": platform.python_version()})
        self.spec_valid.set(1)

    # -- reconcile ------------------------------------------------------------------------------
    def reconcile_finished(
        self, result: str, seconds: float, *, converged_at: float | None = None
    ) -> None:
        """One cycle ended; ``converged_at`` (Unix time) when it converged."""
        self.reconcile_total.labels(result).inc()
        if result == "error":
            self.reconcile_errors.inc()
        self.reconcile_duration.observe(seconds)
        if converged_at is not None:
            self.last_success.set(converged_at)

    def spec_loaded(self, *, valid: bool) -> None:
        self.spec_valid.set(1 if valid else 0)

    def spec_load_failed(self) -> None:
        self.spec_load_errors.inc()

    # -- actions -------------------------------------------------------------------------------
    def action_started(self) -> None:
        self.actions_in_flight.inc()

    def action_finished(
        self, action: str, result: str, seconds: float, *, started: bool = True
    ) -> None:
        """``started=False`` for an action that ended without ``action_started`` (skipped)."""
        if started:
            self.actions_in_flight.dec()
        self.actions_total.labels(action, result).inc()
        self.action_duration.labels(action).observe(seconds)

    def blocked(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.destructive_blocked.labels(reason).inc()

    def no_effect(self, action: str) -> None:
        self.action_no_effect.labels(action).inc()

    # -- APIs ------------------------------------------------------------------------------------
    def observe_proxmox_request(
        self, method: str, endpoint: str, code: str, seconds: float
    ) -> None:
        self.proxmox_api.observe(method, endpoint, code, seconds)

    def observe_kubernetes_request(
        self, method: str, endpoint: str, code: str, seconds: float
    ) -> None:
        self.kubernetes_api.observe(method, endpoint, code, seconds)

    def observe_proxmox_task(self, task_type: str, seconds: float) -> None:
        self.proxmox_task_duration.labels(task_type).observe(seconds)

    # -- fleet -----------------------------------------------------------------------------------
    def set_fleet(
        self,
        *,
        drift: Mapping[str, int],
        gpus: Mapping[tuple[str, str, str], int],
        allocation: Mapping[tuple[str, str], float],
    ) -> None:
        """Replace the fleet gauges (values from ``adapters.gauges.fleet_gauges``)."""
        self.drift_objects.clear()
        for kind, n in drift.items():
            self.drift_objects.labels(kind).set(n)
        self.gpu_devices.clear()
        for (host, mapping, state), n in gpus.items():
            self.gpu_devices.labels(host, mapping, state).set(n)
        self.host_allocation.clear()
        for (host, resource), ratio in allocation.items():
            self.host_allocation.labels(host, resource).set(ratio)

    # -- leadership, MQTT ----------------------------------------------------------------------
    def set_leader(self, name: str, *, leader: bool) -> None:
        self.leader.labels(name).set(1 if leader else 0)

    def set_mqtt_connected(self, connected: bool) -> None:
        if self.mqtt_connected is not None:
            self.mqtt_connected.set(1 if connected else 0)

    def mqtt_event_dropped(self, n: int = 1) -> None:
        if self.mqtt_dropped is not None:
            self.mqtt_dropped.inc(n)
