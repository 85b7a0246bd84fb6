"""docs/metrics.md and the registry list the same metrics, types and labels — both ways."""

from __future__ import annotations

import re
from pathlib import Path

from metrics_support import exposed, populated

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `([a-z_:]+)` \| (\w+) \|([^|]*)\| .+ \|$")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m and m.group(1) != "metric":
            labels = frozenset(re.findall(r"`([a-z_]+)`", m.group(3)))
            out[m.group(1)] = (m.group(2), labels)
    return out


def test_every_registered_metric_is_documented_with_its_type_and_labels() -> None:
    registry = exposed(populated().registry)
    docs = documented()
    assert len(registry) >= 20
    missing = {n: v for n, v in registry.items() if docs.get(n) != v}
    assert missing == {}, f"undocumented or documented differently: {missing}"


def test_every_documented_metric_is_registered() -> None:
    registry = exposed(populated().registry)
    extra = sorted(set(documented()) - set(registry))
    assert extra == [], f"documented but not registered: {extra}"


def test_the_design_contract_names_are_all_present() -> None:
    """DESIGN §9 names each of these; renaming one breaks dashboards and alerts elsewhere."""
    contract = {
        "provisiond_reconcile_total",
        "provisiond_reconcile_errors_total",
        "provisiond_reconcile_duration_seconds",
        "provisiond_last_successful_reconcile_timestamp_seconds",
        "provisiond_drift_objects",
        "provisiond_actions_total",
        "provisiond_action_duration_seconds",
        "provisiond_actions_in_flight",
        "provisiond_destructive_actions_blocked_total",
        "provisiond_proxmox_requests_total",
        "provisiond_proxmox_request_duration_seconds",
        "provisiond_kubernetes_requests_total",
        "provisiond_kubernetes_request_duration_seconds",
        "provisiond_proxmox_task_duration_seconds",
        "provisiond_spec_valid",
        "provisiond_spec_load_errors_total",
        "leader_election_master_status",
        "provisiond_gpu_devices",
        "provisiond_host_allocation_ratio",
        "provisiond_mqtt_connected",
        "provisiond_mqtt_events_dropped_total",
        "provisiond_build_info",
        "provisiond_action_no_effect_total",
    }
    assert contract <= set(exposed(populated().registry))
