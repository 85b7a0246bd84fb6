"""Safety guards (DESIGN §8) that are not a property of one VM: budgets and refusals.

- Disruptions (migrating, rebooting, shutting down or draining a running VM; destroying one) are
  limited per pool (``max_disruptions_per_pool``) and per fleet (``max_disruptions``), counting
  the ones already in flight; the rest wait for a later cycle.
- Destroys: only with ``prune``; never more than max(1, 10%) of the fleet's managed VMs in one
  plan (else none, with "refusing: plan destroys 12 of 20 managed VMs"); at most one per cycle.
- An empty fleet is refused unless it says ``allowEmpty``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provisiond.core.desired import DesiredFleet


@dataclass(slots=True)
class DisruptionBudget:
    """Disruptions allowed in this plan, per fleet and per (fleet, pool)."""

    fleets: dict[str, DesiredFleet]
    used_fleet: dict[str, int] = field(default_factory=dict)
    used_pool: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, fleet: str, pool: str | None) -> None:
        self.used_fleet[fleet] = self.used_fleet.get(fleet, 0) + 1
        if pool is not None:
            self.used_pool[(fleet, pool)] = self.used_pool.get((fleet, pool), 0) + 1

    def refusal(self, fleet: str, pool: str | None) -> str | None:
        """Why one more disruption is not allowed now (``None``: it is)."""
        policy = self.fleets[fleet].policy
        used = self.used_fleet.get(fleet, 0)
        if used >= policy.max_disruptions:
            return f"fleet {fleet} already has {used} disruption(s) under way or planned"
        pool_used = self.used_pool.get((fleet, pool), 0) if pool is not None else 0
        if pool is not None and pool_used >= policy.max_disruptions_per_pool:
            return f"pool {pool} already has {pool_used} disruption(s) under way or planned"
        return None

    def take(self, fleet: str, pool: str | None) -> str | None:
        reason = self.refusal(fleet, pool)
        if reason is None:
            self.count(fleet, pool)
        return reason


def destroy_refusal(candidates: int, managed: int) -> str | None:
    limit = max(1, managed // 10)
    if candidates > limit:
        return f"refusing: plan destroys {candidates} of {managed} managed VMs (limit {limit})"
    return None


def empty_refusal(fleet: DesiredFleet) -> str | None:
    if not fleet.vms and not fleet.policy.allow_empty:
        return f"fleet {fleet.name} declares no VMs: refused (set allowEmpty to mean it)"
    return None
