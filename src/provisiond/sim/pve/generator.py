"""Synthetic topologies for benchmarks and scale tests: N hosts, M VMs, G GPUs behind one PCI
mapping, a mix of shared and host-local storage, all drawn from a seeded RNG (the same
arguments give the same Topology).

Layout: hosts ``host-001`` … (128 threads, 1 TiB), GPUs dealt round-robin over the hosts as
``0000:<bus>:00.0`` devices listed in the mapping ``gpu``; storages ``local-lvm`` (lvmthin, one
per host) and ``shared-nfs``; template 100 on the first host; VMs from VMID 1000 named
``vm-<vmid>`` on random hosts, each disk on shared storage with probability
``shared_fraction``, running with probability ``running_fraction``, HA-managed with probability
``ha_fraction``. Every GPU is given to one running VM on its host, so the topology is valid.
"""

from __future__ import annotations

import random
from typing import Any

from provisiond.core.topology import Topology

TEMPLATE_VMID = 100
FIRST_VMID = 1000
GPU = {"id": "10de:20f1", "name": "GA100 [A100 PCIe 40GB]", "vendorName": "NVIDIA Corporation"}
TAGS = ("web", "db", "batch", "k8s", "gpu", "prod", "dev")


def generate(
    *,
    hosts: int = 3,
    vms: int = 10,
    gpus: int = 0,
    shared_fraction: float = 0.5,
    running_fraction: float = 0.8,
    ha_fraction: float = 0.0,
    seed: int = 0,
    name: str = "synthetic",
) -> Topology:
    if hosts < 1 or vms < 0 or gpus < 0:
        raise ValueError("hosts must be at least 1; vms and gpus not negative")
    if gpus > hosts * 255:
        raise ValueError("at most 255 GPUs per host")
    rng = random.Random(seed)  # noqa: S311 - reproducible layouts, not secrets
    names = [f"host-{i:03d}" for i in range(1, hosts + 1)]
    devices: dict[str, list[str]] = {n: [] for n in names}
    for g in range(gpus):
        host = names[g % hosts]
        devices[host].append(f"0000:{len(devices[host]) + 1:02x}:00.0")
    host_docs = [
        {
            "name": n,
            "cpus": 128,
            "memory": "1TiB",
            "ip": f"10.{i // 250}.{i % 250}.10",
            "pciDevices": [
                {"address": a, **GPU, "iommuGroup": k} for k, a in enumerate(devices[n])
            ],
        }
        for i, n in enumerate(names)
    ]
    free = {n: list(devices[n]) for n in names}
    vm_docs: list[dict[str, Any]] = []
    for vmid in range(FIRST_VMID, FIRST_VMID + vms):
        host = rng.choice(names)
        running = rng.random() < running_fraction
        doc: dict[str, Any] = {
            "vmid": vmid,
            "name": f"vm-{vmid}",
            "host": host,
            "status": "running" if running else "stopped",
            "storage": "shared-nfs" if rng.random() < shared_fraction else "local-lvm",
            "cores": rng.choice((1, 2, 4, 8)),
            "memory": f"{rng.choice((2, 4, 8, 16))}GiB",
            "disks": [{"slot": "scsi0", "size": f"{rng.choice((16, 32, 64))}G"}],
            "nets": [{"slot": "net0", "mac": _mac(vmid)}],
            "tags": sorted(set(rng.sample(TAGS, rng.randint(0, 2)))),
        }
        if running and free[host]:
            free[host].pop()
            doc["hostpci"] = [{"slot": "hostpci0", "mapping": "gpu", "pcie": True}]
            doc["machine"] = "q35"
        if rng.random() < ha_fraction:
            doc["hastate"] = "started" if running else "stopped"
        vm_docs.append(doc)
    spec: dict[str, Any] = {
        "hosts": host_docs,
        "storages": [
            {"name": "local-lvm", "type": "lvmthin", "size": "16TiB"},
            {"name": "shared-nfs", "type": "nfs", "shared": True, "size": "1PiB"},
        ],
        "templates": [
            {
                "vmid": TEMPLATE_VMID,
                "name": "tmpl",
                "host": names[0],
                "storage": "shared-nfs",
                "bridge": "vmbr0",
                "disks": [{"slot": "scsi0", "size": "32G"}],
            }
        ],
        "vms": vm_docs,
    }
    if gpus:
        spec["pciMappings"] = [
            {
                "id": "gpu",
                "description": "synthetic A100s",
                "map": [{"host": n, "path": a} for n in names for a in devices[n]],
            }
        ]
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": name, "description": f"generated (seed {seed})"},
            "spec": spec,
        }
    )


def _mac(vmid: int) -> str:
    return "BC:24:11:" + ":".join(f"{(vmid >> s) & 0xFF:02X}" for s in (16, 8, 0))
