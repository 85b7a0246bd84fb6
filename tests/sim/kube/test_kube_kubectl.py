"""kubectl (the machine's, or a current one ``scripts/tools`` put in ``.tools/bin``) against the
simulator through a written kubeconfig: ``get nodes -o json``, ``label``, ``taint``,
``cordon``/``uncordon``, and a label patch the server rejects (kubectl checks label syntax
itself, so ``label`` never sends a bad one)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from provisiond.sim.kube import KubeSim
from tools_support import tool

pytestmark = pytest.mark.integration


@pytest.fixture
def kubectl(kube: KubeSim, tmp_path: Path):  # type: ignore[no-untyped-def]
    kubectl = tool("kubectl")
    config = kube.write_kubeconfig(tmp_path / "kubeconfig")
    assert config.stat().st_mode & 0o777 == 0o600

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [kubectl, "--kubeconfig", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    return run


def test_kubectl_get_label_taint_cordon(kube: KubeSim, kubectl) -> None:  # type: ignore[no-untyped-def]
    kube.add_node("wk1", ready=True)
    doc = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    assert [n["metadata"]["name"] for n in doc["items"]] == ["wk1"]
    assert doc["items"][0]["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")

    assert kubectl("label", "node", "wk1", "gpu=a100").stdout.strip() == "node/wk1 labeled"
    out = kubectl("taint", "node", "wk1", "dedicated=gpu:NoSchedule").stdout
    assert out.strip() == "node/wk1 tainted"
    assert kubectl("cordon", "wk1").stdout.strip() == "node/wk1 cordoned"
    assert kubectl("cordon", "wk1").stdout.strip() == "node/wk1 already cordoned"

    node = kube.get("nodes", "wk1")
    assert node is not None
    assert node["metadata"]["labels"]["gpu"] == "a100"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    assert node["spec"]["unschedulable"] is True
    assert kube.nodes_summary()[0]["taints"] == ["dedicated=gpu:NoSchedule"]

    assert kubectl("uncordon", "wk1").stdout.strip() == "node/wk1 uncordoned"
    kubectl("taint", "node", "wk1", "dedicated=gpu:NoSchedule-")
    kubectl("label", "node", "wk1", "gpu-")
    node = kube.get("nodes", "wk1")
    assert node is not None
    assert "unschedulable" not in node["spec"]
    assert "taints" not in node["spec"]
    assert "gpu" not in node["metadata"]["labels"]
    counts = kube.request_counts()
    assert counts[("patch", "nodes")] >= 6

    # kubectl checks label syntax itself; a raw patch reaches the server's validation
    patch = '{"metadata":{"labels":{"gpu":"-x-"}}}'
    bad = kubectl("patch", "node", "wk1", "-p", patch, check=False)
    assert bad.returncode != 0
    assert 'Node "wk1" is invalid: metadata.labels: Invalid value: "-x-"' in bad.stderr
