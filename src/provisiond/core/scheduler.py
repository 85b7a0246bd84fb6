"""Host capacity, placement and rebalancing (DESIGN §7).

Capacity of a host: logical CPUs x CPU overcommit, memory x memory overcommit, per PCI mapping
the devices it names on that host, and the storages it reaches. *Every* non-template VM on a host
holds its vCPUs, memory and mapped GPUs, running or not (a mapping binds a device at start, so a
stopped VM still owns its claim).

Invariants:
- ``place`` never returns a host where the request would exceed CPU, memory or free GPUs of its
  mapping, or where a strict-spread pool already has a member;
- the choice is deterministic: filter, then score (a preferred host first, then fewest members
  of the pool, then most free capacity), then the host name;
- loads change only through ``add``/``remove``, which the planner calls for every placement it
  emits, so later decisions in the same plan see earlier ones;
- nothing is decided on what was not observed (``Blind``): a host whose storage list failed
  takes no VM that needs storage, and no GPU VM is placed while the mappings, the host's PCI
  list or the config of a VM on it (whose GPU claims are then unknown) is missing. Such a
  refusal starts with ``NOT_OBSERVED``; ``unseen_among`` names what a failed placement lacked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    preferred: tuple[str, ...] | None = None  # chosen first when they fit (HA rule priorities)


SEARCH_BUDGET = 200_000  # host checks the joint search may make per plan (~0.5 s at worst)
SEARCH_MAX_REQUESTS = 64  # larger batches are placed greedily (and the search recurses per VM)


@dataclass(frozen=True, slots=True)
class Request:
    """One VM to place: its key (VMID), what it needs and where it may go."""

    key: int
    demand: Demand
    constraints: Constraints


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
        ranked, why = self.ranked(d, c)
        if not ranked:
            return None, "; ".join(f"{r}: {', '.join(hs)}" for r, hs in sorted(why.items()))
        return ranked[0], ""

    def ranked(self, d: Demand, c: Constraints) -> tuple[list[str], dict[str, list[str]]]:
        """The hosts that can take ``d``, best first (score, then name); why the others not."""
        fit: list[tuple[bool, int, float, str]] = []
        why: dict[str, list[str]] = {}
        for host in sorted(self.hosts):
            reason = self.refusal(host, d, c)
            if reason is not None:
                why.setdefault(reason, []).append(host)
                continue
            members = self.loads[host].groups.get(d.group, 0) if d.group else 0
            other = c.preferred is not None and host not in c.preferred
            fit.append((other, members, -self._free_after(host, d, c.overcommit), host))
        return [h for *_, h in sorted(fit)], why

    def place_all(self, requests: Sequence[Request]) -> dict[int, str]:
        """Place ``requests`` jointly; their loads are added. Returns key -> host for those
        placed (a request missing from the result fits nowhere, given the others).

        Most constrained first — fewest hosts that can take it now, then GPUs, then VMID — each
        on its best host (``place``). When that leaves some unplaced, a bounded search (at most
        ``SEARCH_MAX_REQUESTS`` requests, ``SEARCH_BUDGET`` host checks; backtracking over each
        request's hosts, best first) looks for an assignment that places more; on small batches
        it is exhaustive, so a placement that exists is found.
        """
        keys = {r.key: self._constrainedness(r) for r in requests}
        # loads only grow while placing: a request no host takes now is never placed
        order = sorted((r for r in requests if keys[r.key][0]), key=lambda r: keys[r.key])
        greedy: dict[int, str] = {}
        for r in order:
            host, _ = self.place(r.demand, r.constraints)
            if host is not None:
                self.add(host, r.demand)
                greedy[r.key] = host
        if len(greedy) == len(order) or len(order) > SEARCH_MAX_REQUESTS:
            return greedy
        for r in order:
            if r.key in greedy:
                self.remove(greedy[r.key], r.demand)
        best = _Search(self, order, len(greedy)).run() or greedy
        for r in order:
            if r.key in best:
                self.add(best[r.key], r.demand)
        return best

    def _constrainedness(self, r: Request) -> tuple[int, bool, int]:
        ranked, _ = self.ranked(r.demand, r.constraints)
        return (len(ranked), not any(r.demand.gpus.values()), r.key)

    def _free_after(self, host: str, d: Demand, oc: Overcommit) -> float:
        cpu_cap, mem_cap = self.capacity(host, oc)
        load = self.loads[host]
        return min(
            (cpu_cap - load.cpu - d.cores) / max(cpu_cap, 1.0),
            (mem_cap - load.mem - d.memory_mib) / max(mem_cap, 1.0),
        )


class _Search:
    """Branch and bound over ``order``: each request on one of its hosts (best first) or left
    out; a branch is cut when it cannot beat the best count found. Deterministic."""

    def __init__(self, sched: Scheduler, order: Sequence[Request], floor: int) -> None:
        self.sched = sched
        self.order = order
        self.best_count = floor
        self.best: dict[int, str] | None = None
        self.steps = SEARCH_BUDGET
        self.chosen: dict[int, str] = {}

    def run(self) -> dict[int, str] | None:
        self._visit(0)
        return self.best

    def _visit(self, i: int) -> bool:
        """Explore from request ``i``; True when every request is placed (stop)."""
        if len(self.chosen) + len(self.order) - i <= self.best_count or self.steps <= 0:
            return False
        if i == len(self.order):
            self.best, self.best_count = dict(self.chosen), len(self.chosen)
            return len(self.chosen) == len(self.order)
        r = self.order[i]
        ranked, _ = self.sched.ranked(r.demand, r.constraints)
        self.steps -= len(self.sched.hosts)
        for host in ranked:
            self.sched.add(host, r.demand)
            self.chosen[r.key] = host
            done = self._visit(i + 1)
            self.sched.remove(host, r.demand)
            del self.chosen[r.key]
            if done:
                return True
        return self._visit(i + 1)
