"""provisiond's Prometheus metrics, on a ``CollectorRegistry`` passed in (no global registry).

Names follow DESIGN §9 (controller-runtime's vocabulary, base units, ``_total`` counters) and
labels stay bounded: endpoint *templates*, action kinds, hosts, pools — never VMIDs or names.
This module holds the metrics the built features report; the HTTP exposition comes with the
telemetry work.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.proxmox_requests = Counter(
            "provisiond_proxmox_requests",
            "Proxmox VE API requests by method, endpoint template and HTTP status (or error).",
            ["method", "endpoint", "code"],
            registry=registry,
        )
        self.proxmox_request_duration = Histogram(
            "provisiond_proxmox_request_duration_seconds",
            "Proxmox VE API request latency.",
            ["method", "endpoint"],
            buckets=_API_BUCKETS,
            registry=registry,
        )

    def observe_proxmox_request(
        self, method: str, endpoint: str, code: str, seconds: float
    ) -> None:
        self.proxmox_requests.labels(method, endpoint, code).inc()
        self.proxmox_request_duration.labels(method, endpoint).observe(seconds)
