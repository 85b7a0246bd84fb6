"""Concurrency limits of the executor: global, per host, and for disruptions per pool and overall.

Which host an action loads: the host it runs on (``Configure``, ``Start`` …), the host a clone
lands on (``target``, else the template's host), and *both* ends of a migration. Disruptive
actions (migrate, the offline GPU move, shutdown, reboot, drain, destroy) also take a disruption
slot of their pool (like a PodDisruptionBudget's maxUnavailable) and a global one.

The values come from the fleets' policies; with several fleets the strictest wins, except the
per-pool disruption limit, which is each fleet's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

# Qualified (``act.Clone``): the executor's dispatch is the one place in runtime that names
# every action class; this module only sorts them by the hosts they load.
from provisiond.core import actions as act
from provisiond.core.actions import Action, hosts_of
from provisiond.core.desired import DesiredState, Policy

Group = tuple[str, str]  # (fleet, pool)


@dataclass(frozen=True, slots=True)
class Limits:
    total: int = 4
    per_host: int = 2
    disruptions: int = 2
    disruptions_per_pool: int = 1  # for pools of fleets without their own value
    pool_overrides: Mapping[str, int] = field(default_factory=dict)  # fleet -> per-pool limit

    @classmethod
    def from_desired(cls, desired: DesiredState | None) -> Limits:
        policies = [f.policy for f in desired.fleets] if desired is not None else []
        if not policies:
            policies = [Policy()]
        return cls(
            total=max(1, min(p.max_concurrent_actions for p in policies)),
            per_host=max(1, min(p.max_concurrent_per_host for p in policies)),
            disruptions=max(1, min(p.max_disruptions for p in policies)),
            disruptions_per_pool=max(1, min(p.max_disruptions_per_pool for p in policies)),
            pool_overrides={
                f.name: max(1, f.policy.max_disruptions_per_pool)
                for f in (desired.fleets if desired is not None else ())
            },
        )

    def pool_limit(self, group: Group | None) -> int:
        if group is None:
            return self.disruptions_per_pool
        return self.pool_overrides.get(group[0], self.disruptions_per_pool)


def disruptive(action: Action) -> bool:
    return isinstance(
        action, act.Migrate | act.GpuMove | act.Shutdown | act.Reboot | act.Drain | act.Destroy
    )


class Slots:
    """The slots in use right now; ``fits`` + ``take``/``give`` around each running action."""

    def __init__(self, limits: Limits, groups: Mapping[int, Group]) -> None:
        self.limits = limits
        self._groups = groups
        self._running = 0
        self._hosts: Counter[str] = Counter()
        self._disruptions = 0
        self._pools: Counter[Group | None] = Counter()

    def _group(self, action: Action) -> Group | None:
        return self._groups.get(action.vmid)

    def fits(self, action: Action) -> bool:
        lim = self.limits
        if self._running >= lim.total:
            return False
        if any(self._hosts[h] >= lim.per_host for h in hosts_of(action)):
            return False
        if disruptive(action):
            group = self._group(action)
            if self._disruptions >= lim.disruptions:
                return False
            if self._pools[group] >= lim.pool_limit(group):
                return False
        return True

    def take(self, action: Action) -> None:
        self._running += 1
        for h in hosts_of(action):
            self._hosts[h] += 1
        if disruptive(action):
            self._disruptions += 1
            self._pools[self._group(action)] += 1

    def give(self, action: Action) -> None:
        self._running -= 1
        for h in hosts_of(action):
            self._hosts[h] -= 1
        if disruptive(action):
            self._disruptions -= 1
            self._pools[self._group(action)] -= 1

    @property
    def running(self) -> int:
        return self._running
