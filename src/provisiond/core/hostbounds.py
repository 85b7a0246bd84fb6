"""What a cluster could ever hold, and the fleet values beyond it (``provisiond validate``).

A fleet whose directory also holds ``kind: Topology`` documents is checked against that cluster:
a VM value no host or storage could ever satisfy is a typo to catch before anything acts on it
(a disk that grows to ``100TiB`` instead of ``100GiB`` cannot be shrunk back). The bounds are
upper bounds: free capacity, other VMs and running state are the planner's business, at plan
time, against the observed cluster.

Rules (docs/fleet-spec.md, "Limits"):
- cores ≤ the logical CPUs of the largest host the VM may use — without overcommit: Proxmox
  refuses to start a VM with more vCPUs than its host has (qemu-server: "MAX n vcpus allowed
  per VM on this node"); overcommit shares CPUs between VMs, it cannot give one VM more;
- memory ≤ the memory of the largest host the VM may use times the fleet's
  ``policy.overcommit.memory`` (the scheduler's capacity rule);
- each disk ≤ the largest instance of its storage (the disk's ``storage``, else the VM's clone
  target ``storage``), or of the largest storage of the cluster when neither names a known one.

"The hosts the VM may use" are its pin (``host``), else its pool's or the fleet's
``placement.hosts``, as far as the topology knows them; otherwise every host.

Pure: topology models and merged settings in, ``(path, message)`` pairs out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from provisiond.core.members import Member
from provisiond.core.spec import Path
from provisiond.core.topology import Topology
from provisiond.core.units import UNITS, format_size, parse_size


@dataclass(frozen=True, slots=True)
class HostBound:
    name: str
    cpus: int
    memory: int  # bytes


@dataclass(frozen=True, slots=True)
class StorageBound:
    name: str
    size: int  # bytes: its largest instance


@dataclass(frozen=True, slots=True)
class ClusterBounds:
    """The hosts and storages of a cluster, and where they were declared (for messages)."""

    source: str
    hosts: tuple[HostBound, ...]
    storages: tuple[StorageBound, ...]


def cluster_bounds(topologies: Sequence[Topology], source: str) -> ClusterBounds:
    hosts = tuple(HostBound(h.name, h.cpus, h.memory) for t in topologies for h in t.spec.hosts)
    storages = tuple(
        StorageBound(s.name, max((s.size, *s.size_per_host.values())))
        for t in topologies
        for s in t.spec.storages
    )
    return ClusterBounds(source, hosts, storages)


def check_member(
    m: Member, bounds: ClusterBounds, *, allowed: Sequence[str] | None, memory_overcommit: float
) -> Iterator[tuple[Path, str]]:
    """Every value of ``m`` beyond what ``bounds`` could hold, with the path of that value."""
    s = m.settings
    hosts = [h for h in bounds.hosts if s.host is None or h.name == s.host]
    if s.host is None and allowed:
        hosts = [h for h in hosts if h.name in allowed]
    hosts = hosts or list(bounds.hosts)
    if hosts:
        yield from _check_host_fit(m, bounds, hosts, memory_overcommit)
    if bounds.storages:
        yield from _check_disks(m, bounds)


def _check_host_fit(
    m: Member, bounds: ClusterBounds, hosts: list[HostBound], overcommit: float
) -> Iterator[tuple[Path, str]]:
    s = m.settings
    which = f"{m.name}'s host" if s.host is not None else "the largest host the VM may use"
    by_cpus = max(hosts, key=lambda h: h.cpus)
    if s.cores is not None and s.cores > by_cpus.cpus:
        yield (
            m.origin("cores"),
            f"{s.cores} cores are more than {which} has: {by_cpus.name} has "
            f"{by_cpus.cpus} logical CPUs ({bounds.source}); Proxmox does not start a VM with "
            "more vCPUs than its host has",
        )
    by_memory = max(hosts, key=lambda h: h.memory)
    if s.memory is not None:
        limit = int(by_memory.memory * overcommit)
        if parse_size(s.memory) > limit:
            ratio = f" x overcommit.memory {overcommit:g}" if overcommit != 1 else ""
            yield (
                m.origin("memory"),
                f"memory {s.memory} is more than {which} could hold: "
                f"{by_memory.name} has {_shown(by_memory.memory)}{ratio} "
                f"({bounds.source}){_smaller_unit(s.memory, limit)}",
            )


def _check_disks(m: Member, bounds: ClusterBounds) -> Iterator[tuple[Path, str]]:
    s = m.settings
    known = {st.name: st for st in bounds.storages}
    largest = max(bounds.storages, key=lambda st: st.size)
    for d, disk in enumerate(s.disks or ()):
        name = disk.storage or s.storage
        storage = known.get(name) if name is not None else None
        target = storage or largest
        size = parse_size(disk.size)
        if size > target.size:
            what = f"storage {target.name}" if storage else f"the largest storage, {target.name},"
            yield (
                (*m.origin("disks"), d, "size"),
                f"disk {disk.slot} of {disk.size} is larger than {what} holds "
                f"({_shown(target.size)}, {bounds.source}); disks grow and never shrink"
                f"{_smaller_unit(disk.size, target.size)}",
            )


def _shown(size: int) -> str:
    """A topology size as a person reads it: exact when it is, else one decimal (``1.8TiB``)."""
    exact = format_size(size)
    if not exact.endswith("KiB") and not exact.endswith("bytes"):
        return exact
    unit = next(u for u in reversed(UNITS) if size >= UNITS[u] or u == "KiB")
    return f"{size / UNITS[unit]:.1f}{unit}"


def _smaller_unit(text: str, limit: int) -> str:
    """``"; did you mean '100GiB'?"`` for a unit slip: the value is far beyond ``limit`` (8x)
    and the same number with the next smaller unit fits."""
    if parse_size(text) <= 8 * limit:
        return ""
    units = list(UNITS)
    for i, unit in enumerate(units[1:], start=1):
        if text.endswith(unit):
            number = text.removesuffix(unit)
            if int(number) * UNITS[units[i - 1]] <= limit:
                return f"; did you mean '{number}{units[i - 1]}'?"
    return ""
