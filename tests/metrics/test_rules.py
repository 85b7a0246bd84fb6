"""Alert rules and the dashboard: promtool checks and unit tests; every metric they use exists;
every runbook link lands on a section of docs/operations.md."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from metrics_support import PROMTOOL, metric_names_in, populated, series_names

ROOT = Path(__file__).parents[2]
PROM = ROOT / "deploy" / "prometheus"
ALERTS = PROM / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "provisiond.json"
OPERATIONS = ROOT / "docs" / "operations.md"

pytestmark = pytest.mark.integration


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, check=False)


def known_series() -> set[str]:
    return series_names(generate_latest(populated().registry).decode())


def rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules() -> None:
    out = promtool("check", "rules", "alerts.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 11 rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = promtool("test", "rules", "alerts.test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests = yaml.safe_load((PROM / "alerts.test.yaml").read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for t in tests:
        for ev in t["alert_rule_test"]:
            (fires if ev["exp_alerts"] else quiet).add(ev["alertname"])
    names = {str(r["alert"]) for r in rules()}
    assert fires == names
    assert quiet == names


def test_the_issue_s_alerts_are_all_there() -> None:
    names = {str(r["alert"]) for r in rules()}
    assert names == {
        "ProvisiondAbsent",
        "ProvisiondDown",
        "ProvisiondNoSuccessfulReconcile",
        "ProvisiondReconcileErrors",
        "ProvisiondDriftPersisting",
        "ProvisiondSpecInvalid",
        "ProvisiondDestructiveActionsBlocked",
        "ProvisiondGpuCapacityExhausted",
        "ProvisiondNoLeader",
        "ProvisiondTwoLeaders",
        "ProvisiondMqttDisconnected",
    }


def test_every_runbook_points_at_a_section_of_operations_md() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("## ")
    }
    for r in rules():
        annotations = r["annotations"]
        assert isinstance(annotations, dict)
        path, _, anchor = str(annotations["runbook"]).partition("#")
        assert path == "docs/operations.md", r["alert"]
        assert anchor in anchors, (r["alert"], anchor, anchors)


def test_every_metric_the_alerts_use_exists() -> None:
    used = metric_names_in(ALERTS.read_text())
    assert len(used) >= 8
    assert used - known_series() == set()


def test_every_metric_the_dashboard_uses_exists() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v.get("query", "") for v in dash["templating"]["list"]]
    used = metric_names_in("\n".join(exprs))
    assert len(used) >= 15
    assert used - known_series() == set()


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    text = DASHBOARD.read_text()
    for name in (
        "provisiond_reconcile_total",
        "provisiond_reconcile_errors_total",
        "provisiond_drift_objects",
        "provisiond_actions_total",
        "provisiond_proxmox_request_duration_seconds_bucket",
        "provisiond_proxmox_requests_total",
        "provisiond_gpu_devices",
        "provisiond_host_allocation_ratio",
        "leader_election_master_status",
        "provisiond_mqtt_connected",
    ):
        assert name in text, name


def test_the_scrape_config_example_is_valid_prometheus_config(tmp_path: Path) -> None:
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text((PROM / "scrape-config.example.yaml").read_text())
    (tmp_path / "alerts.yaml").write_text(ALERTS.read_text())
    out = subprocess.run(
        [PROMTOOL, "check", "config", str(cfg)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
