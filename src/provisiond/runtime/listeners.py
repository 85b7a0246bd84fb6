"""Fan-out of the runtime's listener seams: the executor and the reconciler each take *one*
listener; ``Listeners`` passes every event on to several, in order.

Used by ``app`` (telemetry, MQTT events, and whatever the CLI adds) and by ``cli.progress``
(the live progress bar, then the listeners it was given).

Invariant: listeners are called in the order given, each exactly once per event. A listener that
raises is a bug in that listener; the exception propagates (as it would with one listener) — the
listeners plugged in here (metrics, MQTT events, progress) are written never to raise.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisiond.core.actions import Action
from provisiond.core.plan import Plan
from provisiond.runtime.reconciler import CycleListener, CycleResult
from provisiond.runtime.results import ActionListener, ActionResult


class Listeners:
    """Both an ``ActionListener`` and a ``CycleListener``, forwarding to the ones given."""

    def __init__(
        self,
        *,
        actions: Sequence[ActionListener] = (),
        cycles: Sequence[CycleListener] = (),
    ) -> None:
        self.actions = tuple(actions)
        self.cycles = tuple(cycles)

    # -- ActionListener ------------------------------------------------------------------------
    def plan_started(self, plan: Plan) -> None:
        for listener in self.actions:
            listener.plan_started(plan)

    def action_started(self, action: Action) -> None:
        for listener in self.actions:
            listener.action_started(action)

    def action_finished(self, result: ActionResult) -> None:
        for listener in self.actions:
            listener.action_finished(result)

    # -- CycleListener -------------------------------------------------------------------------
    def cycle_finished(self, result: CycleResult) -> None:
        for listener in self.cycles:
            listener.cycle_finished(result)
