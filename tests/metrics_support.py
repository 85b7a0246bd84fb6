"""Helpers for the metrics tests: a registry with every metric touched, scrapes, free ports."""

from __future__ import annotations

import re
import socket
import urllib.request

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from provisiond.adapters.metrics import Metrics

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"


def populated() -> Metrics:
    """A fresh registry where every metric has at least one sample (so labels show)."""
    m = Metrics(CollectorRegistry(auto_describe=True), version="1.2.3", mqtt=True)
    m.reconcile_finished("success", 0.2, converged_at=1_700_000_000.0)
    m.reconcile_finished("error", 0.1)
    m.spec_loaded(valid=True)
    m.spec_load_failed()
    m.action_started()
    m.action_finished("clone", "succeeded", 12.0)
    m.blocked(["destroy_limit"])
    m.no_effect("configure")
    m.observe_proxmox_request("GET", "/cluster/resources", "200", 0.01)
    m.observe_kubernetes_request("PATCH", "/api/v1/nodes/{name}", "200", 0.02)
    m.observe_proxmox_task("qmclone", 30.0)
    m.set_fleet(
        drift={"clone": 0, "blocked": 0},
        gpus={("gpu-01", "a100-40g", "free"): 8},
        allocation={("gpu-01", "cpu"): 0.5},
    )
    m.set_leader("provisiond", leader=True)
    m.set_mqtt_connected(True)
    m.mqtt_event_dropped()
    return m


def exposed(registry: CollectorRegistry) -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed metric name -> (type, label names), as the docs list them."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for fam in registry.collect():
        name = fam.name
        if name.startswith("process_"):
            continue  # prometheus_client's standard process collector, documented as a group
        if fam.type == "counter":
            name += "_total"
        elif fam.type == "info":
            name += "_info"
        labels = {k for s in fam.samples for k in s.labels if k != "le"}
        out[name] = (fam.type, frozenset(labels))
    return out


def series_names(text: str) -> set[str]:
    """Every sample name in a text exposition (``_bucket``, ``_total``… included)."""
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def metric_names_in(text: str) -> set[str]:
    """Identifiers in PromQL (rules, dashboard queries) that name provisiond's metrics."""
    return set(
        re.findall(
            r"\b(?:provisiond_[a-z0-9_]+|process_[a-z_]+|leader_election_master_status)\b", text
        )
    )
