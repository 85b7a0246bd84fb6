"""The chart run as far as this machine allows (no cluster, no container engine): rendered with
the fleet spec of cps-gpu and the Proxmox simulator's address, its ConfigMaps and Secret laid
out as the pod's volume mounts under a temporary root, and ``provisiond run`` started with the
container's arguments and environment — against the Proxmox simulator and the Kubernetes
simulator linked to it (a kubeconfig stands in for the in-cluster service account). It must
become ready (``/readyz`` on the chart's metrics port), converge, and stop on SIGTERM.

The same run is the recording the chart's RBAC is checked against: every (verb, resource) the
Kubernetes simulator served must be granted by the rendered ClusterRole/Roles, and every grant
must have been used — except ``DRAIN_ONLY``, the drain's grants (a converge drains no node;
the maintenance e2e test exercises them). A grant that shows up in the recording must leave
that list (the test says so).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import VALUES, by_kind, render
from deploy_support import start_daemon

from provisiond.adapters.specfile import load_desired
from provisiond.cli.sandbox import executor_settings
from provisiond.sim.kube.link import Membership, start_linked
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

pytestmark = pytest.mark.e2e

FLEET = EXAMPLES / "cps-gpu" / "fleet.yaml"
# Granted for the drain (adapters/kube_pods.py: a node's pods, their evictions), which this
# converge never needs — it drains no node; tests/e2e/test_maintenance.py runs it.
DRAIN_ONLY = {
    ("list", "pods"),
    ("create", "pods/eviction"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lay_out_pod(objects: list[dict[str, Any]], root: Path) -> tuple[list[str], dict[str, str]]:
    """Write each volume's files where the container mounts it, under ``root``; returns the
    container's arguments (paths moved under ``root``) and its environment."""
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    maps = {c["metadata"]["name"]: c["data"] or {} for c in by_kind(objects, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s["stringData"] for s in by_kind(objects, "Secret")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = sorted(container["volumeMounts"], key=lambda m: len(m["mountPath"]))

    # One pass, longest mount path first, only at the start of a path.
    paths = "|".join(re.escape(m["mountPath"]) for m in reversed(mounts))
    pattern = re.compile(rf"(?<![\w/.-])({paths})")

    def moved(text: str) -> str:
        return pattern.sub(lambda found: f"{root}{found.group(1)}", text)

    for mount in mounts:
        where = Path(f"{root}{mount['mountPath']}")
        where.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = maps[volume["configMap"]["name"]]
        elif "secret" in volume:
            data = secrets[volume["secret"]["secretName"]]
        else:
            continue  # emptyDir
        items = volume.get("configMap", volume.get("secret", {})).get("items")
        files = {i["path"]: data[i["key"]] for i in items} if items else dict(data)
        for path, content in files.items():
            (where / path).parent.mkdir(parents=True, exist_ok=True)
            (where / path).write_text(moved(content))
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    pod_env = {"POD_NAME": "pd-provisiond-0", "POD_NAMESPACE": "provisiond"}
    return [moved(a) for a in container["args"]], pod_env


def _granted(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    out = set()
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    label = resource + (f".{group}" if group else "")
                    out |= {(verb, label) for verb in rule["verbs"]}
    return out


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except OSError:
        return 0


@pytest.mark.timeout(240)
def test_rendered_chart_runs_converges_and_uses_exactly_its_rbac(tmp_path: Path) -> None:
    desired = load_desired([FLEET])
    port = _free_port()
    with running_simulator("cps-gpu", time_scale=0.01) as pve:
        kube = start_linked(pve, membership=Membership.from_desired(desired))
        try:
            tokenid, _, secret = pve.token.rpartition("=")
            values = tmp_path / "values.yaml"
            values.write_text(
                yaml.safe_dump(
                    {
                        "proxmox": {"url": pve.url, "tokenId": tokenid, "tokenSecret": secret},
                        "metrics": {"port": port},
                        "extraSettings": {"executor": executor_settings(0.01)},
                    }
                )
            )
            objects = render(
                "--values", str(VALUES / "minimal.yaml"),
                "--values", str(values),
                "--set-file", f"fleet.cps-gpu={FLEET}",
                "--set-file", f"proxmox.caBundle={pve.ca_path}",
            )  # fmt: skip
            args, env = _lay_out_pod(objects, tmp_path / "pod")
            env["KUBECONFIG"] = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
            log = tmp_path / "daemon.log"
            proc = start_daemon(["run", *args, "--follow-up", "0.05"], log, env)
            try:
                deadline = time.monotonic() + 150
                converged = False
                while time.monotonic() < deadline and not converged:
                    assert proc.poll() is None, log.read_text()[-3000:]
                    time.sleep(0.2)
                    events = [
                        json.loads(ln) for ln in log.read_text().splitlines() if ln[:1] == "{"
                    ]
                    converged = any(
                        e.get("event") == "plan_ready"
                        and e.get("actions") == 0
                        and e.get("waiting") == 0
                        and not e.get("unobserved")
                        for e in events
                    )
                assert converged, log.read_text()[-3000:]
                assert _get(f"http://127.0.0.1:{port}/readyz") == 200
                assert _get(f"http://127.0.0.1:{port}/healthz") == 200
                want = {vm.vmid for vm in desired.all_vms()}
                assert want <= set(pve.vmids())
                assert all(pve.vm(v).status == "running" for v in want)  # type: ignore[union-attr]
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(35) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            recorded = {
                (verb, label) for (verb, label), n in kube.request_counts().items()
                if n and not label.startswith("/")  # discovery: every client may read it
            }  # fmt: skip
        finally:
            kube.stop()
    granted = _granted(objects)
    assert recorded <= granted, f"calls the chart does not grant: {recorded - granted}"
    stale = DRAIN_ONLY & recorded
    assert not stale, f"now called by the code: remove {stale} from DRAIN_ONLY"
    assert granted == recorded | DRAIN_ONLY, f"granted, never called: {granted - recorded}"
