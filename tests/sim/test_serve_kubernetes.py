"""``provisiond sim serve --kubernetes``: a fourth line, ``kubeconfig: PATH``, that kubectl-style
clients use; the running VMs join as Nodes; both simulators stop cleanly."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config
from serve_process import INFERNO, serve

ASTRONOMY = INFERNO.parents[1] / "astronomy-lab" / "topology.yaml"

pytestmark = pytest.mark.integration


def test_serve_with_kubernetes_prints_a_kubeconfig_that_lists_the_running_vms() -> None:
    with serve(ASTRONOMY, "--kubernetes", "--time-scale", "0.01") as served:
        assert served.proc.stdout is not None
        line = served.proc.stdout.readline().rstrip("\n")
        assert line.startswith("kubeconfig: "), (served.lines, line)
        path = line.removeprefix("kubeconfig: ")
        api = config.new_client_from_config(config_file=path)
        with api:
            core = client.CoreV1Api(api)
            running = {
                vm["name"]
                for vm in served.api().cluster.resources.get(type="vm")
                if vm.get("status") == "running" and not vm.get("template")
            }
            # the VMs the fleet.yaml beside the topology makes Kubernetes nodes join (~1 s)
            deadline = time.monotonic() + 15
            names: set[str] = set()
            while time.monotonic() < deadline and len(names) < 8:
                names = {n.metadata.name for n in core.list_node().items}
                time.sleep(0.1)
            assert len(names) == 8
            assert names <= running
    assert served.proc.returncode == 0, served.stderr[-2000:]
