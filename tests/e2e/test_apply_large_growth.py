"""``apply --allow-large-growth``: the one-run confirmation of a disk growth that is blocked
by default (more than ``policy.maxDiskGrowth``, 4 times, at once; PVE cannot shrink a disk).

The CLI runs as a process against a simulator that outlives it, so the disk's size is read
back from the simulator: without the flag nothing is resized, with it the disk grows.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import write_settings

from cli_support import provisiond
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

TOPOLOGY = """\
apiVersion: provisiond.dev/v1alpha1
kind: Topology
metadata: {name: grow}
spec:
  hosts:
    - {name: pve1, cpus: 16, memory: 64GiB}
  storages:
    - {name: local-lvm, type: lvmthin, size: 2TB}
  templates:
    - name: tmpl
      vmid: 9000
      host: pve1
      storage: local-lvm
      bridge: vmbr0
      disks: [{slot: scsi0, size: 8G}]
  vms:
    - name: db1
      vmid: 101
      host: pve1
      status: running
      cores: 2
      memory: 4GiB
      storage: local-lvm
      disks: [{slot: scsi0, size: 10G}]
      nets: [{slot: net0, bridge: vmbr0}]
      tags: [provisiond, pd-grow]
"""
FLEET = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: grow}
spec:
  defaults: {template: tmpl, storage: local-lvm, bridge: vmbr0, cores: 2, memory: 4GiB}
  pools:
    - name: db
      disks: [{slot: scsi0, size: 100GiB}]   # 10 times the disk db1 has
      vms: [{name: db1, vmid: 101}]
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[SimHandle, Path]]:
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    with running_simulator(topology) as sim:
        yield sim, write_settings(tmp_path, sim, fleet)


def apply(cfg: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return provisiond("apply", "--config", str(cfg), "--auto-approve", *flags)


def disk_size(sim: SimHandle) -> str:
    vm = sim.vm(101)
    assert vm is not None
    found = re.search(r"size=(\w+)", str(vm.config["scsi0"]))
    assert found is not None, vm.config["scsi0"]
    return found.group(1)


def test_a_large_growth_waits_for_allow_large_growth(world: tuple[SimHandle, Path]) -> None:
    sim, cfg = world
    assert disk_size(sim) == "10G"

    blocked = apply(cfg)
    assert blocked.returncode == 3, blocked.stdout + blocked.stderr  # blocked items left
    assert "[large_disk_growth]: scsi0: 10GiB → 100GiB grows it more than 4 times" in (
        blocked.stdout
    )
    assert "grow_disk" not in blocked.stdout
    assert disk_size(sim) == "10G"  # nothing resized

    allowed = apply(cfg, "--allow-large-growth")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "grow_disk db1 (101) on pve1 succeeded" in allowed.stdout
    assert "large_disk_growth" not in allowed.stdout
    assert disk_size(sim) == "100G"
