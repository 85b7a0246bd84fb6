"""Host capacity, placement and rebalancing (DESIGN §7).

Capacity of a host: logical CPUs x CPU overcommit, memory x memory overcommit, per PCI mapping
the devices it names on that host, and the storages it reaches. *Every* non-template VM on a host
holds its vCPUs, memory and mapped GPUs, running or not (a mapping binds a device at start, so a
stopped VM still owns its claim).

Invariants:
- ``place`` never returns a host where the request would exceed CPU, memory or free GPUs of its
  mapping, or where a strict-spread pool already has a member;
- the choice is deterministic: filter, then score (fewest members of the pool, then most free
  capacity), then the host name;
- loads change only through ``add``/``remove``, which the planner calls for every placement it
  emits, so later decisions in the same plan see earlier ones;
- nothing is decided on what was not observed (``Blind``): a host whose storage list failed
  takes no VM that needs storage, and no GPU VM is placed while the mappings, the host's PCI
  list or the config of a VM on it (whose GPU claims are then unknown) is missing. Such a
  refusal starts with ``NOT_OBSERVED``; ``unseen_among`` names what a failed placement lacked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from provisiond.core.desired import Overcommit, Spread
from provisiond.core.observed import Host, PciMapping

Group = tuple[str, str]  # (fleet, pool)
NOT_OBSERVED = "not observed: "


@dataclass(frozen=True, slots=True)
class Blind:
    """The inputs of placement that were not observed this cycle."""

    storage: frozenset[str] = frozenset()  # hosts whose storage list is unseen
    gpus: Mapping[str, str] = field(default_factory=dict)  # host -> what hides its GPU claims
    mappings: bool = False


@dataclass(slots=True)
class Load:
    cpu: int = 0  # vCPUs
    mem: int = 0  # MiB
    gpus: dict[str, int] = field(default_factory=dict)
    groups: dict[Group, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Demand:
    """What a VM needs from a host."""

    cores: int
    memory_mib: int
    gpus: Mapping[str, int] = field(default_factory=dict)
    group: Group | None = None
    spread: Spread = Spread.PREFERRED
    storages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraints:
    """Where a VM may go, beyond what the hosts can hold."""

    overcommit: Overcommit
    hosts: tuple[str, ...] | None = None  # None = any
    exclude: tuple[str, ...] = ()  # maintenance, the current host
    cpu_limit: float = 1.0  # fraction of (overcommitted) capacity the host may reach
    mem_limit: float = 1.0


class Scheduler:
    def __init__(
        self, hosts: Iterable[Host], mappings: Iterable[PciMapping], blind: Blind | None = None
    ) -> None:
        self.hosts = {h.name: h for h in hosts}
        self.blind = blind or Blind()
        self.mappings = {m.id: m for m in mappings}
        self.loads = {name: Load() for name in self.hosts}

    def add(self, host: str, d: Demand) -> None:
        self._shift(host, d, 1)

    def remove(self, host: str, d: Demand) -> None:
        self._shift(host, d, -1)

    def _shift(self, host: str, d: Demand, sign: int) -> None:
        load = self.loads.get(host)
        if load is None:  # a VM on a host that is not in the host list: nothing to count
            return
        load.cpu += sign * d.cores
        load.mem += sign * d.memory_mib
        for m, n in d.gpus.items():
            load.gpus[m] = load.gpus.get(m, 0) + sign * n
        if d.group is not None:
            load.groups[d.group] = load.groups.get(d.group, 0) + sign

    def capacity(self, host: str, oc: Overcommit) -> tuple[float, float]:
        h = self.hosts[host]
        return h.cpus * oc.cpu, h.memory_mib * oc.memory

    def free_gpus(self, host: str, mapping: str) -> int:
        m = self.mappings.get(mapping)
        have = m.devices_on(host) if m is not None else 0
        return have - self.loads[host].gpus.get(mapping, 0)

    def usage(self, host: str, oc: Overcommit) -> tuple[float, float]:
        """(CPU, memory) load as a fraction of capacity."""
        cpu_cap, mem_cap = self.capacity(host, oc)
        load = self.loads[host]
        return load.cpu / max(cpu_cap, 1.0), load.mem / max(mem_cap, 1.0)

    def unseen(self, host: str, d: Demand) -> str | None:
        """What ``d``'s placement on ``host`` rests on that was not observed (``None``: all)."""
        if d.storages and host in self.blind.storage:
            return f"storage of host {host}"
        if any(d.gpus.values()):
            if self.blind.mappings:
                return "PCI mappings"
            return self.blind.gpus.get(host)
        return None

    def unseen_among(self, d: Demand, c: Constraints) -> tuple[str, ...]:
        """What was not observed about the hosts ``c`` allows (a failed placement may fit there)."""
        out: list[str] = []
        for host in sorted(self.hosts):
            if self._allowed(host, c):
                what = self.unseen(host, d)
                if what is not None and what not in out:
                    out.append(what)
        return tuple(out)

    def _allowed(self, host: str, c: Constraints) -> bool:
        return self.hosts[host].online and not (
            host in c.exclude or (c.hosts is not None and host not in c.hosts)
        )

    def refusal(self, host: str, d: Demand, c: Constraints) -> str | None:
        """Why ``host`` cannot take ``d`` (``None``: it can)."""
        h = self.hosts[host]
        if not h.online:
            return "offline"
        if host in c.exclude or (c.hosts is not None and host not in c.hosts):
            return "not allowed"
        what = self.unseen(host, d)
        if what is not None:
            return NOT_OBSERVED + what
        for s in d.storages:
            if h.storage(s) is None:
                return f"no storage {s}"
        for m, n in sorted(d.gpus.items()):
            if self.free_gpus(host, m) < n:
                return f"no {n} free {m}"
        if d.spread is Spread.STRICT and d.group and self.loads[host].groups.get(d.group, 0):
            return f"strict spread of {d.group[1]}"
        cpu_cap, mem_cap = self.capacity(host, c.overcommit)
        load = self.loads[host]
        if load.cpu + d.cores > cpu_cap * c.cpu_limit:
            return "CPU"
        if load.mem + d.memory_mib > mem_cap * c.mem_limit:
            return "memory"
        return None

    def place(self, d: Demand, c: Constraints) -> tuple[str | None, str]:
        """The best host for ``d``, or ``None`` and a summary of why none fits."""
        fit: list[tuple[int, float, str]] = []
        why: dict[str, list[str]] = {}
        for host in sorted(self.hosts):
            reason = self.refusal(host, d, c)
            if reason is not None:
                why.setdefault(reason, []).append(host)
                continue
            members = self.loads[host].groups.get(d.group, 0) if d.group else 0
            fit.append((members, -self._free_after(host, d, c.overcommit), host))
        if not fit:
            return None, "; ".join(f"{r}: {', '.join(hs)}" for r, hs in sorted(why.items()))
        return min(fit)[2], ""

    def _free_after(self, host: str, d: Demand, oc: Overcommit) -> float:
        cpu_cap, mem_cap = self.capacity(host, oc)
        load = self.loads[host]
        return min(
            (cpu_cap - load.cpu - d.cores) / max(cpu_cap, 1.0),
            (mem_cap - load.mem - d.memory_mib) / max(mem_cap, 1.0),
        )
