"""Live progress of ``apply`` and ``demo``: rich progress bars on a terminal, plain lines elsewhere.

``Progress`` is both the executor's ``ActionListener`` and the reconciler's ``CycleListener``;
it also counts actions per kind and outcome for the final summary, and passes every event on to
further listeners (``runtime.listeners.Listeners``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from provisiond.cli.report import action_target, summary_line
from provisiond.core.actions import Action
from provisiond.core.plan import Plan
from provisiond.runtime.listeners import Listeners
from provisiond.runtime.reconciler import CycleListener, CycleResult
from provisiond.runtime.results import ActionListener, ActionResult, Outcome

_MARK = {
    Outcome.SUCCEEDED: "[green]✓[/]",
    Outcome.ADOPTED: "[cyan]≡[/]",
    Outcome.REQUEUED: "[yellow]↻[/]",
    Outcome.FAILED: "[red]✗[/]",
    Outcome.SKIPPED: "[dim]-[/]",
    Outcome.INTERRUPTED: "[yellow]‖[/]",
}


def describe(action: Action) -> str:
    name, vmid, host = action_target(action)
    on = f" on {host}" if host else ""
    return f"{action.kind} {name} ({vmid}){on}"


class Progress:
    def __init__(
        self,
        console: Console,
        *,
        quiet: bool = False,
        action_listeners: Sequence[ActionListener] = (),
        cycle_listeners: Sequence[CycleListener] = (),
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.done: Counter[str] = Counter()  # kind -> succeeded or adopted
        self.failed: Counter[str] = Counter()
        self.outcomes: Counter[Outcome] = Counter()
        self.cycles = 0
        self._next = Listeners(actions=action_listeners, cycles=cycle_listeners)
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        if console.is_terminal and not quiet:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("actions", total=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    # -- ActionListener ------------------------------------------------------------------------
    def plan_started(self, plan: Plan) -> None:
        """A plan starts executing: extend the bar by its actions."""
        self._next.plan_started(plan)
        if self._bar is not None and self._task is not None:
            current = self._bar.tasks[0].total or 0
            self._bar.update(self._task, total=current + len(plan.actions))

    def action_started(self, action: Action) -> None:
        self._next.action_started(action)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=escape(describe(action)))

    def action_finished(self, result: ActionResult) -> None:
        self._next.action_finished(result)
        self.outcomes[result.outcome] += 1
        if result.outcome.done:
            self.done[result.action.kind] += 1
        elif result.outcome is Outcome.FAILED:
            self.failed[result.action.kind] += 1
        if self.quiet:
            return
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task)
        if result.outcome is Outcome.SKIPPED and self._bar is not None:
            return  # the bar shows it; skipped items are listed at the end
        detail = f": {escape(result.detail)}" if result.detail else ""
        line = (
            f"{_MARK[result.outcome]} {escape(describe(result.action))} "
            f"[dim]{result.outcome.value} {result.seconds:.1f}s[/]{detail}"
        )
        if self._bar is not None:
            self._bar.console.print(line)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    # -- CycleListener -------------------------------------------------------------------------
    def cycle_finished(self, result: CycleResult) -> None:
        self._next.cycle_finished(result)
        self.cycles += 1
        if self.quiet:
            return
        out = self._bar.console if self._bar is not None else self.console
        if result.spec_error is not None:
            out.print("[red]spec invalid (keeping the last good spec):[/]")
            for issue in result.spec_error.issues:
                out.print(f"  {escape(str(issue))}", highlight=False)
        if result.error is not None:
            out.print(f"[red]cycle {result.id} failed:[/] {escape(result.error)}")
        elif result.plan is not None:
            out.print(
                f"[dim]cycle {result.id}: {escape(summary_line(result.plan))} "
                f"({result.seconds:.1f}s)[/]",
                highlight=False,
            )
