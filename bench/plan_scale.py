"""Planner scale benchmark: plan time and peak RSS for synthetic clusters.

    .venv/bin/python bench/plan_scale.py            # both sizes, each in a fresh process
    .venv/bin/python bench/plan_scale.py 10000 200  # one size, in this process

A synthetic state: ``hosts`` hosts (64 logical CPUs, 512 GiB, local + shared NFS storage), every
4th with 4 GPUs of the mapping ``gpu``; ``vms`` desired VMs in 10 fleets of pools of 50, 5 % of
them GPU VMs, half of them Kubernetes nodes with two labels and a taint. Observed: 98 % of the
VMs exist exactly as desired (with their Kubernetes nodes), 1 % are missing (cloned by the plan),
1 % have drifted (fewer cores). Results go to docs/performance.md ("Planner") by hand.
"""

from __future__ import annotations

import gc
import resource
import subprocess
import sys
import time

from provisiond.core.desired import (
    DesiredFleet,
    DesiredState,
    DesiredVM,
    DiskSpec,
    GpuRequest,
    KubeNodeSpec,
    NicSpec,
    Policy,
    Taint,
    TemplateRef,
    ownership_marker,
)
from provisiond.core.drift import desired_tags
from provisiond.core.nodes import render_record, taint_id
from provisiond.core.observed import (
    MANAGED_ANNOTATION,
    Disk,
    Host,
    HostPci,
    KubeNode,
    MappingEntry,
    Nic,
    ObservedState,
    ObservedVM,
    PciMapping,
    Storage,
    VMConfig,
    VMStatus,
)
from provisiond.core.planner import plan

GIB = 1 << 30
LABELS = (("node.example/pool", "x"), ("tier", "batch"))
TAINT = Taint("dedicated", "batch", "NoSchedule")


def synthetic(n_vms: int, n_hosts: int) -> tuple[DesiredState, ObservedState]:
    hosts = tuple(
        Host(f"h{i:03d}", True, 64, 512 * 1024, (Storage("local"), Storage("nfs", shared=True)))
        for i in range(n_hosts)
    )
    gpu_hosts = [h.name for h in hosts[::2]]
    mapping = PciMapping(
        "gpu",
        tuple(MappingEntry(h, tuple(f"0000:{j:02x}:00.0" for j in range(8))) for h in gpu_hosts),
    )
    template = ObservedVM(
        9000,
        "tmpl",
        hosts[0].name,
        VMStatus.STOPPED,
        2,
        2048,
        template=True,
        config=VMConfig(
            cores=2,
            memory_mib=2048,
            disks={"scsi0": Disk("scsi0", "nfs", 10 * GIB)},
            nets={0: Nic(0, "virtio", "BC:24:11:00:00:01", "vmbr0")},
        ),
    )
    fleets: dict[str, list[DesiredVM]] = {}
    observed: list[ObservedVM] = [template]
    nodes: list[KubeNode] = []
    gpu_free = dict.fromkeys(gpu_hosts, 8)
    record = render_record(frozenset(k for k, _ in LABELS), frozenset({taint_id(TAINT)}))
    for i in range(n_vms):
        fleet = f"fleet{i % 10}"
        gpu = i % 20 == 0
        vmid = 10000 + i
        kube = KubeNodeSpec(f"node{vmid}", LABELS, (TAINT,)) if i % 2 == 0 else None
        d = DesiredVM(
            fleet=fleet,
            pool=f"pool{(i // 10) % 50}",
            name=f"vm{vmid}",
            vmid=vmid,
            template=TemplateRef(name="tmpl"),
            cores=4,
            memory_mib=8192,
            disks=(DiskSpec("scsi0", 20 * GIB),),
            nics=(
                NicSpec(
                    0,
                    "vmbr0",
                    mac=f"BC:24:11:{vmid >> 16 & 255:02X}:{vmid >> 8 & 255:02X}:{vmid & 255:02X}",
                ),
            ),
            gpus=GpuRequest("gpu", 1) if gpu else None,
            kubernetes=kube,
        )
        fleets.setdefault(fleet, []).append(d)
        if i % 100 == 7:
            continue  # missing: the plan clones it
        if gpu:
            host = next((h for h, n in sorted(gpu_free.items()) if n > 0), None)
            if host is None:
                continue
            gpu_free[host] -= 1
        else:
            host = hosts[i % n_hosts].name
        cores = 3 if i % 100 == 13 else 4  # drifted
        cfg = VMConfig(
            cores=cores,
            memory_mib=8192,
            disks={"scsi0": Disk("scsi0", "nfs", 20 * GIB)},
            nets={0: Nic(0, "virtio", d.nics[0].mac, "vmbr0")},
            hostpci={0: HostPci(0, "gpu")} if gpu else {},
            tags=desired_tags(d),
            description=ownership_marker(fleet, d.name),
        )
        observed.append(
            ObservedVM(vmid, d.name, host, VMStatus.RUNNING, cores, 8192, tags=cfg.tags, config=cfg)
        )
        if kube is not None:
            nodes.append(
                KubeNode(
                    kube.node_name,
                    labels=dict(LABELS),
                    taints=(TAINT,),
                    annotations={MANAGED_ANNOTATION: record},
                )
            )
    desired = DesiredState(
        tuple(
            DesiredFleet(n, Policy(max_disruptions=1000), tuple(v))
            for n, v in sorted(fleets.items())
        )
    )
    return desired, ObservedState(
        hosts=hosts, mappings=(mapping,), vms=tuple(observed), kube=tuple(nodes)
    )


def _times(desired: DesiredState, observed: ObservedState, repeat: int) -> tuple[list[float], str]:
    times = []
    summary = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = plan(desired, observed, now=0.0)
        times.append(time.perf_counter() - t0)
        summary = str(result.summary())
    return sorted(times), summary


def run(n_vms: int, n_hosts: int, repeat: int = 7) -> None:
    desired, observed = synthetic(n_vms, n_hosts)
    rss_states = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, summary = _times(desired, observed, repeat)
    gc.freeze()  # what a daemon can do after each observation: the snapshot is never collected
    frozen, _ = _times(desired, observed, repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ms = lambda ts: f"min {ts[0] * 1000:6.1f} / median {ts[len(ts) // 2] * 1000:6.1f} ms"  # noqa: E731 -- a local formatter
    print(f"{n_vms} VMs / {n_hosts} hosts: {summary}")
    print(f"  plan: {ms(times)}; with gc.freeze(): {ms(frozen)}")
    print(f"  peak RSS {rss:.1f} MiB (of which the states and interpreter: {rss_states:.1f} MiB)")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run(int(sys.argv[1]), int(sys.argv[2]))
    else:
        for size in (("1000", "100"), ("10000", "200")):
            subprocess.run([sys.executable, __file__, *size], check=True)
