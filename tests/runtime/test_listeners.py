"""``Listeners`` passes every event to each listener, in the order given, once."""

from __future__ import annotations

from typing import Any

from provisiond.runtime.listeners import Listeners


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, str, Any]]) -> None:
        self.name = name
        self.log = log

    def plan_started(self, plan: Any) -> None:
        self.log.append((self.name, "plan_started", plan))

    def action_started(self, action: Any) -> None:
        self.log.append((self.name, "action_started", action))

    def action_finished(self, result: Any) -> None:
        self.log.append((self.name, "action_finished", result))

    def cycle_finished(self, result: Any) -> None:
        self.log.append((self.name, "cycle_finished", result))


def test_each_event_reaches_each_listener_once_in_order() -> None:
    log: list[tuple[str, str, Any]] = []
    a, b, c = Recorder("a", log), Recorder("b", log), Recorder("c", log)
    fan = Listeners(actions=[a, b], cycles=[c, a])
    fan.plan_started("p")  # type: ignore[arg-type]
    fan.action_started("x")  # type: ignore[arg-type]
    fan.action_finished("r")  # type: ignore[arg-type]
    fan.cycle_finished("cy")  # type: ignore[arg-type]
    assert log == [
        ("a", "plan_started", "p"),
        ("b", "plan_started", "p"),
        ("a", "action_started", "x"),
        ("b", "action_started", "x"),
        ("a", "action_finished", "r"),
        ("b", "action_finished", "r"),
        ("c", "cycle_finished", "cy"),
        ("a", "cycle_finished", "cy"),
    ]
    Listeners().cycle_finished("nobody")  # type: ignore[arg-type]  # no listener: nothing happens
