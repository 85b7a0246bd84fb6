"""deploy/helm/provisiond: ``helm lint`` and ``helm template`` with the default and several
other values files; a values file breaking values.schema.json is refused; every rendered
manifest valid against the Kubernetes schemas (kubernetes-validate), the pod spec meeting the
"restricted" Pod Security profile; optional parts rendered only when enabled.

RBAC against the calls the code makes: test_chart_rbac.py. The chart run: test_chart_run.py.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import VALUES, by_kind, helm, render, restricted_violations, settings_of
from deploy_support import CHART, ROOT, tool

pytestmark = pytest.mark.integration

K8S_VERSION = "1.30.0"  # the chart's kubeVersion floor is 1.27; validate against a current one
CUSTOM = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: checked below
VALUE_FILES = ["minimal.yaml", "full.yaml", "single.yaml"]


def _values(name: str | None) -> list[str]:
    return [] if name is None else ["--values", str(VALUES / name)]


@pytest.mark.parametrize("values", [None, *VALUE_FILES])
def test_helm_lint_strict(values: str | None) -> None:
    done = helm("lint", "--strict", str(CHART), *_values(values))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_values_file_breaking_the_schema_is_refused() -> None:
    for command in ("lint", "template"):
        done = helm(command, str(CHART), "--values", str(VALUES / "invalid.yaml"))
        assert done.returncode != 0
        assert "tokenSecrett" in done.stdout + done.stderr


def test_every_object_of_the_schema_refuses_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_ = []

    def walk(node: dict[str, Any], where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                open_.append(where)
            for key, sub in node["properties"].items():
                walk(sub, f"{where}.{key}")

    walk(schema, "values")
    assert open_ == []
    # And every key of values.yaml is described by the schema (none left to additionalProperties).
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) == set(schema["properties"])


@pytest.mark.parametrize("values", [None, *VALUE_FILES])
def test_rendered_manifests_are_valid_kubernetes_objects(values: str | None) -> None:
    objects = render(*_values(values))
    for obj in objects:
        if obj["kind"] in CUSTOM:
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Every volume the container mounts exists; the token is mounted where the settings look.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert set(mounts) == {v["name"] for v in pod["volumes"]}
    settings = settings_of(objects)
    token_file = Path(settings["proxmox"]["token_secret_file"])
    assert str(token_file.parent) == mounts["proxmox-token"]


def test_the_restricted_check_catches_what_it_must() -> None:
    (deployment,) = by_kind(render(*_values("minimal.yaml")), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    cases = {
        "privileged": lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        "allowPrivilegeEscalation": lambda p: p["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "runAsNonRoot": lambda p: (
            p["securityContext"].pop("runAsNonRoot"),
            p["containers"][0]["securityContext"].pop("runAsNonRoot"),
        ),
        "drop ALL": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        "hostNetwork": lambda p: p.update(hostNetwork=True),
        "type ['hostPath']": lambda p: p["volumes"].append(
            {"name": "h", "hostPath": {"path": "/"}}
        ),
        "seccompProfile": lambda p: (
            p["securityContext"].pop("seccompProfile"),
            p["containers"][0]["securityContext"].pop("seccompProfile"),
        ),
    }
    for expected, breaks in cases.items():
        broken = copy.deepcopy(pod)
        breaks(broken)
        found = restricted_violations(broken)
        assert any(expected in v for v in found), (expected, found)


def test_optional_parts_render_only_when_enabled() -> None:
    default = {o["kind"] for o in render()}
    assert default == {
        "Deployment", "ServiceAccount", "ConfigMap", "Service", "PodDisruptionBudget",
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    }  # fmt: skip
    assert "Secret" not in default  # neither tokenSecret nor existingSecret: made outside
    full = render(*_values("full.yaml"))
    kinds = {o["kind"] for o in full}
    assert {"NetworkPolicy", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert "Secret" not in kinds  # existingSecret
    (deployment,) = by_kind(full, "Deployment")
    token = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "proxmox-token"
    )
    assert token["secret"]["secretName"] == "pve-token"
    assert token["secret"]["items"] == [{"key": "secret", "path": "proxmox-token-secret"}]
    single = {o["kind"] for o in render(*_values("single.yaml"))}
    assert not single & {"ServiceAccount", "ClusterRole", "Role", "PodDisruptionBudget"}
    (minimal_secret,) = by_kind(render(*_values("minimal.yaml")), "Secret")
    assert set(minimal_secret["stringData"]) == {"proxmox-token-secret"}


def test_network_policy_allows_dns_api_server_proxmox_and_broker_only() -> None:
    (policy,) = by_kind(render(*_values("full.yaml")), "NetworkPolicy")
    egress = policy["spec"]["egress"]
    ports = sorted({p["port"] for rule in egress for p in rule["ports"]})
    assert ports == [53, 443, 6443, 8006, 8883]
    assert all("to" in rule for rule in egress if rule["ports"][0]["port"] != 53)


def test_prometheus_rule_carries_the_shipped_alert_rules_and_promtool_accepts_them(
    tmp_path: Path,
) -> None:
    (rule,) = by_kind(render(*_values("full.yaml")), "PrometheusRule")
    shipped = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    assert rule["spec"] == shipped
    groups = tmp_path / "rules.yaml"
    groups.write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run(
        [tool("promtool"), "check", "rules", str(groups)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (monitor,) = by_kind(render(*_values("full.yaml")), "ServiceMonitor")
    (service,) = by_kind(render(*_values("full.yaml")), "Service")
    # The alert rules select job="provisiond": the job label is the Service's name label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "provisiond"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_settings_follow_the_values() -> None:
    (settings_map,) = [
        c
        for c in by_kind(render(*_values("full.yaml")), "ConfigMap")
        if "provisiond.yaml" in c["data"]
    ]
    settings = yaml.safe_load(settings_map["data"]["provisiond.yaml"])
    assert settings["daemon"] == {"interval": 30, "read_only": True, "cluster": "cps"}
    assert settings["proxmox"]["ca_bundle"] == "/etc/provisiond/ca/ca.pem"
    assert settings["leader_election"]["namespace"] == "provisiond"
    assert settings["executor"] == {"task_poll_max": 10}
    assert settings["metrics"]["bind"] == "0.0.0.0:19339"
