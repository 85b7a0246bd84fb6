"""The plan: ordered actions plus everything the planner decided *not* to do, with reasons.

Invariants (checked by property tests):
- ``actions`` is a topological order of ``after``: an id in ``after`` names an action earlier in
  the list; ids are unique;
- phases never decrease along the list; destroys come last;
- ``blocked``, ``conflicts`` and ``waiting`` explain every desired VM the plan does not converge;
- a converged world gives a plan with no actions (``plan.empty``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from provisiond.core.actions import Action


@dataclass(frozen=True, slots=True)
class Blocked:
    """Work the planner wanted to do but must not, now. ``code`` is a stable metric label."""

    code: str  # "unknown_status", "pending_reboot", "disruption_limit", "destroy_limit", …
    reason: str
    vmid: int | None = None
    name: str | None = None
    fleet: str | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A desired VM that collides with something provisiond does not own; left alone."""

    reason: str
    vmid: int
    name: str
    fleet: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """Work already under way (a clone's placeholder, a running migration): nothing to do."""

    reason: str
    vmid: int
    name: str


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    waiting: tuple[Waiting, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def summary(self) -> dict[str, int]:
        """Counts per action kind, plus ``blocked``, ``conflicts`` and ``waiting``."""
        counts = Counter(a.kind for a in self.actions)
        return {
            **dict(sorted(counts.items())),
            "blocked": len(self.blocked),
            "conflicts": len(self.conflicts),
            "waiting": len(self.waiting),
        }
