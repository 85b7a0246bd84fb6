"""Snapshots (``SimHandle.snapshot()``, ``provisiond sim snapshot``) and the synthetic topology
generator: a snapshot served again snapshots the same; every config survives byte for byte;
10,000 generated VMs come back from one ``/cluster/resources`` call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from migrate_lab import lab
from proxmoxer.tools import Tasks
from ruamel.yaml import YAML

from provisiond.core.topology import Topology
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.snapshot import to_yaml
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration


def _configs(sim: Any) -> dict[int, tuple[str, dict[str, Any]]]:
    return sim.call(lambda c: {v.vmid: (v.node, dict(v.config)) for v in c.vms.values()})


def _round_trip(first: Topology) -> Topology:
    with running_simulator(first, time_scale=0.002) as sim:
        return sim.snapshot()


@pytest.mark.parametrize("name", ["cps-gpu", "astronomy-lab", "inferno"])
def test_examples_round_trip(name: str) -> None:
    with running_simulator(name, time_scale=0.002) as sim:
        first = sim.snapshot()
        configs = _configs(sim)
    assert first.metadata.name == name
    with running_simulator(first, time_scale=0.002) as sim:
        assert _configs(sim) == configs  # every config byte for byte
        assert sim.snapshot() == first


def test_round_trip_after_changes(tmp_path: Path) -> None:
    """Clones, a migration with a storage change, a paused VM, an offline host, HA state."""
    with running_simulator(lab(), time_scale=0.002) as sim:
        api = proxmox_client(sim)

        def wait(upid: str) -> None:
            assert Tasks.blocking_status(api, upid, polling_interval=0.01)["exitstatus"] == "OK"

        wait(api.nodes("pve1").qemu(100).clone.post(newid=200))
        wait(api.nodes("pve1").qemu(100).clone.post(newid=201))  # the same default name
        wait(api.nodes("pve1").qemu(102).migrate.post(target="pve2", targetstorage="shared-nfs"))
        api.nodes("pve2").qemu(102).config.put(tags="b;a", delete="boot")
        sim.call(lambda c: setattr(c.vms[101], "paused", True))
        sim.host_offline("pve3")
        first = sim.snapshot()
        configs = _configs(sim)
    vms = {v.vmid: v for v in first.spec.vms}
    assert vms[102].host == "pve2"
    assert vms[102].tags == ("a", "b")
    assert vms[102].config["boot"] == ""  # removed from what the simulator would build
    assert vms[101].status == "paused"
    assert vms[107].hastate == "started"
    assert (vms[200].name, vms[201].config["name"]) == ("Copy-of-VM-web", "Copy-of-VM-web")
    assert next(h for h in first.spec.hosts if h.name == "pve3").online is False
    path = tmp_path / "snap.yaml"
    path.write_text(to_yaml(first))
    again = Topology.model_validate(YAML(typ="safe").load(path.read_text()))
    assert again == first
    with running_simulator(again, time_scale=0.002) as sim:
        assert _configs(sim) == configs
        assert sim.snapshot() == first


def test_sim_snapshot_command(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=0.002) as sim:
        out = tmp_path / "snap.yaml"
        cmd = [sys.executable, "-m", "provisiond", "sim", "snapshot", "--url", sim.url]
        done = subprocess.run(
            [*cmd, "--token", sim.token, "--ca", sim.ca_path, "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        expected = sim.snapshot()
    assert Topology.model_validate(YAML(typ="safe").load(out.read_text())) == expected
    bad = subprocess.run(
        [*cmd, "--token", "root@pam!x=y", "--ca", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1


def test_generator_is_seeded_and_valid() -> None:
    a = generate(hosts=4, vms=50, gpus=6, shared_fraction=0.5, ha_fraction=0.2, seed=3)
    assert a == generate(hosts=4, vms=50, gpus=6, shared_fraction=0.5, ha_fraction=0.2, seed=3)
    assert a != generate(hosts=4, vms=50, gpus=6, shared_fraction=0.5, ha_fraction=0.2, seed=4)
    assert len(a.spec.hosts) == 4
    assert len(a.spec.vms) == 50
    assert sum(len(h.pci_devices) for h in a.spec.hosts) == 6
    assert len(a.spec.pci_mappings[0].map) == 6
    assert {vm.storage for vm in a.spec.vms} == {"shared-nfs", "local-lvm"}
    assert any(vm.hastate for vm in a.spec.vms)
    assert sum(1 for vm in a.spec.vms if vm.hostpci) == 6
    with pytest.raises(ValueError, match="hosts"):
        generate(hosts=0)


def test_ten_thousand_vms_in_one_resources_call() -> None:
    topology = generate(hosts=40, vms=10_000, gpus=80, seed=1)
    with running_simulator(topology, time_scale=0.01) as sim:
        api = proxmox_client(sim, timeout=60)
        vms = api.cluster.resources.get(type="vm")
    assert sum(1 for v in vms if not v["template"]) == 10_000
