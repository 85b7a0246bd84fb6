"""What executing a plan did: one result per action, and the listener seam for progress/metrics.

Outcomes (controller-runtime's distinction between a requeue and an error):
- ``succeeded``: the call was made, its task ended ``OK``/``WARNINGS: n`` and the effect shows;
- ``adopted``: the effect already existed or was under way (a clone's placeholder, a running
  migration) and was waited for, never repeated;
- ``requeued``: the object is locked (backup, snapshot…): try again later, not an error;
- ``failed``: the action could not be done; ``detail`` says why (task log tail included);
- ``skipped``: not attempted — a dependency did not complete, the object is backing off after a
  failure or after the same action had no effect (``no_effect``), or the executor was asked to
  stop;
- ``interrupted``: stop was requested while a Proxmox task ran; the task continues server-side
  and the next cycle (or the next start) adopts it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from provisiond.core.actions import Action
from provisiond.core.plan import Plan


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    ADOPTED = "adopted"
    REQUEUED = "requeued"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def done(self) -> bool:
        """The action's effect is in place: dependents may run."""
        return self in (Outcome.SUCCEEDED, Outcome.ADOPTED)


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0
    retry_after: float | None = None  # when it is worth trying this object again
    # Skipped because its last run had no effect (planned again on an unchanged object): the
    # ``provisiond_action_no_effect_total`` count (one per wasted run, not per skip).
    no_effect: bool = False


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    results: tuple[ActionResult, ...] = ()
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        """Results per outcome (every outcome present, zeros included)."""
        c = Counter(r.outcome for r in self.results)
        return {o.value: c.get(o, 0) for o in Outcome}

    def by_kind(self, *outcomes: Outcome) -> dict[str, int]:
        """Actions per kind whose outcome is one of ``outcomes`` (default: done)."""
        wanted = outcomes or (Outcome.SUCCEEDED, Outcome.ADOPTED)
        return dict(
            sorted(Counter(r.action.kind for r in self.results if r.outcome in wanted).items())
        )

    @property
    def failed(self) -> tuple[ActionResult, ...]:
        return tuple(r for r in self.results if r.outcome is Outcome.FAILED)

    @property
    def progressed(self) -> bool:
        """Whether anything changed or completed (a new cycle may find more to do)."""
        return any(r.outcome.done for r in self.results)

    @property
    def retry_after(self) -> float | None:
        """The earliest moment (seconds from now) worth retrying something not done."""
        hints = [r.retry_after for r in self.results if r.retry_after is not None]
        return min(hints) if hints else None


class ActionListener(Protocol):
    """Progress/metrics seam: told when a plan starts, when each action starts and how it ended."""

    def plan_started(self, plan: Plan) -> None: ...

    def action_started(self, action: Action) -> None: ...

    def action_finished(self, result: ActionResult) -> None: ...
