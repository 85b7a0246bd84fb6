"""The read endpoints common clients call first (SEMANTICS Addendum 2): node version, the
(empty) container list, the cluster's storage configuration, a VM's directory
index, and ``rrddata`` for nodes and VMs.

``rrddata`` is derived from the load profile (``load.py``): 70 rows per timeframe at PVE's RRD
steps (hour 1 min, day 30 min, week 3 h, month 12 h, year 1 week), the row time aligned to the
step; ``AVERAGE`` is the mean of five samples across the step, ``MAX`` their maximum. A VM row
before the VM was started carries only ``time``, as PVE's RRD has no data there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from provisiond.sim.pve import load
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.handlers.cluster import PVE_VERSION
from provisiond.sim.pve.state import GiB, VmState

RRD_STEPS = {"hour": 60, "day": 1800, "week": 10800, "month": 43200, "year": 604800}
RRD_ROWS = 70
VM_SUBDIRS = (
    "config",
    "cloudinit",
    "pending",
    "status",
    "unlink",
    "vncproxy",
    "termproxy",
    "migrate",
    "resize",
    "move",
    "rrd",
    "rrddata",
    "monitor",
    "agent",
    "snapshot",
    "spiceproxy",
    "sendkey",
    "firewall",
    "mtunnel",
    "remote_migrate",
)


# ha-manager service state -> the state the request asked for
async def node_version(call: Call) -> object:
    call.cluster.node(str(call.params["node"]))
    return dict(PVE_VERSION)


async def lxc_list(call: Call) -> object:
    """A QEMU-only cluster: no containers on any node."""
    call.cluster.node(str(call.params["node"]))
    return []


async def vm_index(call: Call) -> object:
    """qemu-server's ``vmdiridx`` lists the subdirectories without loading the config."""
    call.cluster.node(str(call.params["node"]))
    return [{"subdir": s} for s in VM_SUBDIRS]


async def storage_config(call: Call) -> object:
    """``GET /storage``: the datacenter's storage.cfg entries the caller may see."""
    wanted = call.get_str("type")
    out = []
    for st in call.cluster.storages.values():
        if wanted is not None and st.type.value != wanted:
            continue
        seen = ["Datastore.Audit", "Datastore.AllocateSpace"]
        if not call.perms.has(f"/storage/{st.name}", seen, any_=True):
            continue
        item: dict[str, object] = {
            "storage": st.name,
            "type": st.type.value,
            "content": ",".join(st.content),
            "digest": "0" * 40,
        }
        if st.shared:
            item["shared"] = 1
        if st.hosts:
            item["nodes"] = ",".join(st.hosts)
        out.append(item)
    return out


def _rows(call: Call, sample: Callable[[float], dict[str, float] | None]) -> list[object]:
    step = RRD_STEPS[str(call.params["timeframe"])]
    use_max = call.get_str("cf") == "MAX"
    end = int(time.time()) // step * step
    out: list[object] = []
    for i in range(RRD_ROWS - 1, -1, -1):
        t = end - i * step
        samples = [s for k in range(5) if (s := sample(t - step + step * (k + 1) / 5))]
        row: dict[str, object] = {"time": t}
        if samples:
            for key in samples[0]:
                values = [s[key] for s in samples]
                row[key] = max(values) if use_max else sum(values) / len(values)
        out.append(row)
    return out


async def node_rrddata(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"]))

    def sample(t: float) -> dict[str, float]:
        cpu = load.node_cpu(cluster, node, t)
        return {
            "cpu": cpu,
            "maxcpu": node.cpus,
            "iowait": round(cpu * 0.02, 6),
            "loadavg": round(cpu * node.cpus, 2),
            "memtotal": node.memory,
            "memused": load.node_mem_used(cluster, node, t),
            "swaptotal": 0,
            "swapused": 0,
            "roottotal": 100 * GiB,
            "rootused": 10 * GiB,
            "netin": round(cpu * 5e6, 2),
            "netout": round(cpu * 4e6, 2),
        }

    return _rows(call, sample)


async def vm_rrddata(call: Call) -> object:
    vm: VmState = call.vm()

    def sample(t: float) -> dict[str, float] | None:
        if not load.running_at(vm, t):
            return None
        cpu = load.vm_cpu(vm, t)
        return {
            "cpu": cpu,
            "maxcpu": vm.cpus(),
            "mem": load.vm_mem(vm, t),
            "maxmem": vm.memory_bytes(),
            "disk": 0,
            "maxdisk": vm.disk_bytes(),
            "netin": round(cpu * 2e6, 2),
            "netout": round(cpu * 1.5e6, 2),
            "diskread": round(cpu * 8e6, 2),
            "diskwrite": round(cpu * 4e6, 2),
        }

    return _rows(call, sample)
