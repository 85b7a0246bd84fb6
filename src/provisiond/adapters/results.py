"""What the runtime's results look like to the adapters that listen to them.

Adapters may not import the runtime (import-linter), so the listeners here (``Telemetry``,
``SystemdNotifier``, MQTT's ``EventFeed``) describe ``runtime.reconciler.CycleResult`` and
``runtime.executor.ActionResult`` structurally, by the attributes they read. One description
per result, shared by every listener: a new attribute read by one listener is added here, and
mypy checks it against the runtime's classes where ``app`` registers the listeners.
"""

from __future__ import annotations

from typing import Protocol

from provisiond.core.actions import Action
from provisiond.core.errors import SpecError
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan


class FinishedAction(Protocol):
    @property
    def action(self) -> Action: ...
    @property
    def outcome(self) -> str: ...  # runtime.results.Outcome, a StrEnum
    @property
    def detail(self) -> str: ...
    @property
    def seconds(self) -> float: ...


class ReportView(Protocol):
    def counts(self) -> dict[str, int]: ...


class FinishedCycle(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def result(self) -> str: ...
    @property
    def converged(self) -> bool: ...
    @property
    def observed(self) -> ObservedState | None: ...
    @property
    def plan(self) -> Plan | None: ...
    @property
    def spec_error(self) -> SpecError | None: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def report(self) -> ReportView | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def incomplete(self) -> tuple[str, ...]: ...
