"""PVE 9.x end to end: the daemon's reconciler in-process against the time-scaled simulator
(``pveVersion: "9.1"``, its simulated HA manager running a round every 10 simulated seconds),
through the real proxmoxer client. Migrations are counted from the simulator's record of every
migration that ended (by the daemon's requests or by the HA manager).

- a strict HA rule against a spec pin: a conflict in every plan, no migration of that VM over
  5 simulated minutes;
- the CRS auto-rebalance on beside provisiond's rebalance (``haManaged: auto``), skewed start:
  total migrations bounded, no VM moved A -> B -> A;
- astronomy-lab and cps-gpu converge on the 9.1 surface as on 8.4.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import TIME_SCALE, check_world, desired_of, example, in_process_settings
from ruamel.yaml import YAML

from provisiond import app
from provisiond.core.topology import Topology
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import load_topology, running_simulator

pytestmark = pytest.mark.e2e

VARIANT = Path(__file__).resolve().parent / "astronomy-lab-9.1"
MIGRATE = "/nodes/{node}/qemu/{vmid}/migrate"
SIM_MINUTES = 5
CYCLE_EVERY = 10.0  # simulated seconds between daemon cycles (the default interval is 60 s)


async def _run_for(sim: SimHandle, spec: Path, minutes: float) -> list[Any]:
    """Daemon cycles every ``CYCLE_EVERY`` simulated seconds for ``minutes``; the plans."""
    built = app.build_daemon(in_process_settings(sim, spec), follow_up=0.05)
    plans = []
    try:
        for _ in range(int(minutes * 60 / CYCLE_EVERY)):
            result = await built.reconciler.cycle()
            assert result.error is None, result.error
            plans.append(result.plan)
            await asyncio.sleep(CYCLE_EVERY * TIME_SCALE)
    finally:
        built.close()
    return plans


def _back_and_forth(migrations: list[tuple[int, str, str, str]]) -> list[int]:
    """VMs moved A -> B and then B -> A."""
    last: dict[int, tuple[str, str]] = {}
    out = []
    for vmid, source, target, _ in migrations:
        prev = last.get(vmid)
        if prev is not None and prev == (target, source):
            out.append(vmid)
        last[vmid] = (source, target)
    return out


async def test_strict_rule_against_a_spec_pin_is_a_conflict_and_nothing_moves_it() -> None:
    with running_simulator(VARIANT / "topology.yaml", time_scale=TIME_SCALE) as sim:
        plans = await _run_for(sim, VARIANT / "fleet.yaml", SIM_MINUTES)
        for p in plans:
            assert [c.name for c in p.conflicts] == ["dc01"]
            assert "PVE HA rule 'dc-on-compute'" in p.conflicts[0].reason
        assert sim.count_requests("POST", MIGRATE, vmid=103) == 0
        assert [m for m in sim.migrations() if m[0] == 103] == []
        assert sim.vm(103).node == "node01"
        assert _back_and_forth(sim.migrations()) == []


def _skewed(tmp: Path, ha_managed: str) -> tuple[Topology, Path]:
    """12 VMs of 4 GiB on node01 of four 64 GiB hosts (75 % memory), 8 of them HA-managed; the
    CRS auto-rebalance on (static, threshold 0.3, hold 3 rounds); provisiond rebalances above
    50 % memory."""
    vm = {"host": "node01", "status": "running", "storage": "shared", "cores": 2,
          "memory": "4GiB", "disks": [{"slot": "scsi0", "size": "8G"}],
          "nets": [{"slot": "net0", "bridge": "vmbr0"}]}  # fmt: skip
    topo = Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "skewed"},
            "spec": {
                "pveVersion": "9.1",
                "crs": {"ha": "static", "haAutoRebalance": True},
                "hosts": [{"name": f"node0{i}", "cpus": 16, "memory": "64GiB"}
                          for i in range(1, 5)],
                "storages": [{"name": "shared", "type": "nfs", "shared": True, "size": "10TiB"}],
                "templates": [{"vmid": 9000, "name": "tmpl", "host": "node01", "storage": "shared",
                               "disks": [{"slot": "scsi0", "size": "8G"}], "bridge": "vmbr0"}],
                "vms": [
                    {**vm, "vmid": 100 + i, "name": f"vm{i}",
                     **({"hastate": "started"} if i < 8 else {})}
                    for i in range(12)
                ],
            },
        }
    )  # fmt: skip
    fleet = {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "skewed"},
        "spec": {
            "defaults": {"template": "tmpl", "storage": "shared", "bridge": "vmbr0"},
            "pools": [
                {
                    "name": "all",
                    "cores": 2,
                    "memory": "4GiB",
                    "disks": [{"slot": "scsi0", "size": "8GiB"}],
                    "vms": [{"name": f"vm{i}", "vmid": 100 + i} for i in range(12)],
                }
            ],
            "policy": {
                "adopt": True,
                "maxDisruptions": 4,
                "rebalance": {"enabled": True, "memoryThreshold": 0.5, "haManaged": ha_managed},
            },
        },
    }
    path = tmp / "fleet.yaml"
    with path.open("w") as f:
        YAML().dump(fleet, f)
    return topo, path


async def test_auto_rebalance_beside_provisiond_rebalance_moves_nothing_back(
    tmp_path: Path,
) -> None:
    topo, fleet = _skewed(tmp_path, "auto")
    with running_simulator(topo, time_scale=TIME_SCALE) as sim:
        plans = await _run_for(sim, fleet, SIM_MINUTES)
        migrations = sim.migrations()
        assert _back_and_forth(migrations) == []
        per_vm = Counter(m[0] for m in migrations)
        assert all(n == 1 for n in per_vm.values()), per_vm
        assert len(migrations) <= 12
        ha = set(range(100, 108))
        for vmid in ha:  # provisiond left them to the CRS
            assert sim.count_requests("POST", MIGRATE, vmid=vmid) == 0
        assert any(b.code == "left_to_crs" for p in plans for b in p.blocked)
        assert {m[0] for m in migrations} & ha, "the CRS balanced the HA-managed VMs"
        assert {m[0] for m in migrations} - ha, "provisiond balanced the others"
        assert any(line.startswith("auto rebalance - migrate") for line in sim.ha_log())


def _on_91(name: str) -> Topology:
    topo = load_topology(name)
    return topo.model_copy(update={"spec": topo.spec.model_copy(update={"pve_version": "9.1"})})


@pytest.mark.parametrize("name", ["cps-gpu", "astronomy-lab"])
async def test_the_examples_converge_on_91(name: str) -> None:
    desired = desired_of(name)
    with running_simulator(_on_91(name), time_scale=TIME_SCALE) as sim:
        built = app.build_daemon(in_process_settings(sim, example(name)), follow_up=0.05)
        try:
            for _ in range(10):
                result = await built.reconciler.cycle()
                assert result.error is None, result.error
                if result.converged:
                    break
                await asyncio.sleep(0.05)
            assert result.converged, result.plan
            check_world(sim, desired)
            assert sim.requests("GET", "/cluster/ha/rules") >= 1  # the 9.x surface was read
        finally:
            built.close()
