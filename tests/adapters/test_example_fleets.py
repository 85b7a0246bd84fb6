"""The example fleets say what EXAMPLES.md pins: names, VMIDs, IPs, MACs, sizes, GPUs, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisiond.adapters.specfile import load_desired, load_documents
from provisiond.core.desired import DesiredFleet, DesiredVM, Spread, Taint

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
GIB = 1024


def _fleet(name: str) -> DesiredFleet:
    (fleet,) = load_desired([EXAMPLES / name]).fleets
    return fleet


def _by_name(fleet: DesiredFleet) -> dict[str, DesiredVM]:
    return {vm.name: vm for vm in fleet.vms}


CPS_TABLE = [  # VM, VMID, IP, MAC, vCPU, RAM GiB
    ("k3s-cp1", 1035, "10.21.0.35", "00:16:3E:63:79:26", 4, 16),
    ("k3s-cp2", 1036, "10.21.0.36", "00:16:3E:63:79:27", 4, 16),
    ("k3s-cp3", 1037, "10.21.0.37", "00:16:3E:63:79:28", 4, 16),
    ("k3s-wk-gpu1", 1038, "10.21.0.38", "00:16:3E:63:79:29", 48, 128),
    ("k3s-wk-gpu2", 1043, "10.21.0.43", "00:16:3E:63:79:2E", 48, 128),
    ("k3s-wk-gpu3", 1040, "10.21.0.40", "00:16:3E:63:79:2B", 48, 128),
    ("k3s-wk-gpu4", 1041, "10.21.0.41", "00:16:3E:63:79:2C", 48, 128),
    ("k3s-maint", 1042, "10.21.0.42", "00:16:3E:63:79:2F", 4, 8),
]


def test_cps_gpu_ip_mac_table() -> None:
    fleet = _fleet("cps-gpu")
    got = []
    for vm in fleet.vms:
        assert vm.cloud_init is not None
        (ipconfig,) = vm.cloud_init.ipconfigs
        assert ipconfig.gateway == "10.21.1.17"
        assert vm.cloud_init.nameservers == ("193.171.87.249", "193.171.87.250")
        (nic,) = vm.nics
        assert (nic.bridge, nic.vlan) == ("vmbr0", 633)
        got.append(
            (vm.name, vm.vmid, ipconfig.ip.removesuffix("/16"), nic.mac, vm.cores, vm.memory_mib)
        )
    assert got == [(n, v, ip, mac, c, m * GIB) for n, v, ip, mac, c, m in CPS_TABLE]
    assert fleet.tag == "pd-cps-gpu"


def test_cps_gpu_eight_gpus_across_four_workers() -> None:
    vms = _fleet("cps-gpu").vms
    gpu_vms = [vm for vm in vms if vm.gpus is not None]
    assert [vm.name for vm in gpu_vms] == [f"k3s-wk-gpu{i}" for i in range(1, 5)]
    assert {(vm.gpus.mapping, vm.gpus.count) for vm in gpu_vms if vm.gpus} == {("a100-40g", 2)}
    assert sum(vm.gpus.count for vm in gpu_vms if vm.gpus) == 8
    assert sum(vm.cores for vm in vms) == 208  # on 128 logical CPUs, under overcommit 4.0


def test_cps_gpu_disks_labels_taints_and_the_maintenance_vm() -> None:
    vms = _by_name(_fleet("cps-gpu"))
    wk1, wk2, cp1 = vms["k3s-wk-gpu1"], vms["k3s-wk-gpu2"], vms["k3s-cp1"]
    assert [(d.slot, d.size_bytes >> 30, d.storage) for d in wk2.disks] == [
        ("scsi0", 500, "local-nvme"),
        ("scsi1", 1024, "nfs-scratch"),
    ]
    assert wk1.kubernetes is not None
    assert wk2.kubernetes is not None
    assert dict(wk1.kubernetes.labels) == {
        "accelerator": "nvidia",
        "gpu-model": "a100",
        "scratch": "nvme",
        "nvidia.com/mig.capable": "true",
    }
    assert dict(wk2.kubernetes.labels) == {
        "accelerator": "nvidia",
        "gpu-model": "a100",
        "scratch": "nvme",
    }
    assert cp1.kubernetes is not None
    assert cp1.kubernetes.taints == (
        Taint("node-role.kubernetes.io/control-plane", "true", "NoSchedule"),
    )
    assert vms["k3s-maint"].kubernetes is None
    assert all(vm.template.name == "k3s-node-tmpl" for vm in vms.values())
    assert all(vm.allowed_hosts == ("cit-gpu-01",) for vm in vms.values())


@pytest.mark.parametrize(
    "case",
    [
        (
            "inferno-pool-gpu",
            4,
            "2",
            (Taint("inferno/gpu", "true", "NoSchedule"),),
            ("rtx-pro-6000", 1),
            "inferno-host-compute-1",
        ),
        (
            "inferno-pool-exper",
            2,
            "6",
            (Taint("inferno/experiment", "true", "PreferNoSchedule"),),
            ("l40s", 1),
            "inferno-host-exper-1",
        ),
        ("inferno-pool-master", 3, "1", (), None, "inferno-host-master"),
    ],
)
def test_inferno_labels_and_taints_per_pool(
    case: tuple[str, int, str, tuple[Taint, ...], tuple[str, int] | None, str],
) -> None:
    pool, count, circle, taints, gpus, host = case
    vms = [vm for vm in _fleet("inferno").vms if vm.pool == pool]
    assert len(vms) == count
    assert [vm.index for vm in vms] == list(range(1, count + 1))
    for vm in vms:
        assert vm.kubernetes is not None
        assert vm.kubernetes.labels == (("inferno.circle", circle),)
        assert vm.kubernetes.taints == taints
        got = (vm.gpus.mapping, vm.gpus.count) if vm.gpus else None
        assert got == gpus
        assert vm.allowed_hosts == (host,)


def test_inferno_names_and_vmids_are_derived() -> None:
    vms = _by_name(_fleet("inferno"))
    assert vms["inferno-gpu-01"].vmid == 2001
    assert vms["inferno-gpu-04"].vmid == 2004
    assert vms["inferno-exper-02"].vmid == 2102
    assert vms["inferno-master-03"].vmid == 2203


def test_astronomy_lab_adopts_spreads_and_rebalances() -> None:
    fleet = _fleet("astronomy-lab")
    assert fleet.policy.adopt
    assert fleet.policy.rebalance.enabled
    vms = _by_name(fleet)
    assert len(vms) == 25
    masters = [vm for vm in fleet.vms if vm.pool == "k8s-masters"]
    assert [vm.name for vm in masters] == ["proj-k8sm01", "proj-k8sm02", "proj-k8sm03"]
    assert {vm.spread for vm in masters} == {Spread.STRICT}
    assert vms["dc01"].spread is vms["dc02"].spread is Spread.STRICT
    assert vms["dc01"].kubernetes is None
    assert vms["proj-k8sw04"].gpus is not None
    assert vms["proj-k8sw04"].gpus.mapping == "rtx3080"


def test_astronomy_lab_fleet_matches_the_existing_vms_it_adopts() -> None:
    loaded = load_documents([EXAMPLES / "astronomy-lab"])
    assert loaded.ok
    (top,) = loaded.topologies
    fleet = _fleet("astronomy-lab")
    desired = {vm.vmid: vm for vm in fleet.vms}
    existing = {vm.vmid: vm for vm in top.topology.spec.vms}
    assert desired.keys() == existing.keys()
    for vmid, vm in existing.items():
        assert (desired[vmid].name, desired[vmid].cores) == (vm.name, vm.cores)
        assert desired[vmid].memory_mib == vm.memory >> 20
    node02 = [vm for vm in existing.values() if vm.host == "node02"]
    assert sum(vm.cores for vm in node02) == 18
    assert sum(vm.memory for vm in node02) >> 30 == 66
