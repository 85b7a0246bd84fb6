"""Live usage numbers: a deterministic load profile per VM, and the node figures that follow.

What a real cluster reports as ``cpu``/``mem`` moves all the time; tools that graph or balance
on it need numbers that vary, differ per VM and add up. Each VM has a base level drawn from its
VMID and two waves (an hour and five minutes long) around it, so the same VM at the same wall
time always reports the same load; a stopped VM (or one not yet started at that time) reports
none. A node's ``cpu`` is its VMs' load over its cores plus a small base; its used memory is
its VMs' used memory plus a base, never more than the node has (free is never negative).

Figures are fractions (``cpu``: 0..1 of the guest's or node's cores) and bytes.
"""

from __future__ import annotations

import math

from provisiond.sim.pve.state import Cluster, GiB, Node, VmState

NODE_BASE_CPU = 0.01  # the host's own services
NODE_BASE_MEM = 2 * GiB  # the host's own use, as cluster.node_used_memory always counted
_GOLDEN = 2654435761  # Knuth's multiplicative hash: spreads consecutive VMIDs


def _unit(vmid: int, salt: int) -> float:
    """A stable number in [0, 1) for ``vmid``."""
    return ((vmid * _GOLDEN + salt * 40503) % 1_000_003) / 1_000_003


def running_at(vm: VmState, t: float) -> bool:
    return vm.running and vm.started_at is not None and vm.started_at <= t


def vm_cpu(vm: VmState, t: float) -> float:
    """The fraction of the VM's cores in use at wall time ``t``."""
    if not running_at(vm, t):
        return 0.0
    level = 0.05 + 0.55 * _unit(vm.vmid, 1)
    slow = math.sin(2 * math.pi * t / 3600 + 2 * math.pi * _unit(vm.vmid, 2))
    fast = math.sin(2 * math.pi * t / 300 + 2 * math.pi * _unit(vm.vmid, 3))
    return round(min(1.0, max(0.0, level * (1 + 0.3 * slow + 0.15 * fast))), 6)


def vm_mem(vm: VmState, t: float) -> int:
    """The guest memory in use at ``t``: a share of its memory that grows with its load."""
    if not running_at(vm, t):
        return 0
    share = 0.25 + 0.3 * _unit(vm.vmid, 4) + 0.2 * vm_cpu(vm, t)
    return int(vm.memory_bytes() * min(share, 0.95))


def node_vms(cluster: Cluster, node: Node) -> list[VmState]:
    return [vm for vm in cluster.vms.values() if vm.node == node.name]


def node_cpu(cluster: Cluster, node: Node, t: float) -> float:
    busy = sum(vm_cpu(vm, t) * vm.cpus() for vm in node_vms(cluster, node))
    return round(min(1.0, NODE_BASE_CPU + busy / max(1, node.cpus)), 6)


def node_mem_used(cluster: Cluster, node: Node, t: float) -> int:
    used = NODE_BASE_MEM + sum(vm_mem(vm, t) for vm in node_vms(cluster, node))
    return min(node.memory, used)
