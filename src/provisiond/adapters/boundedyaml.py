"""Bounded YAML reading for spec files (``core.limits.SpecLimits``, docs/fleet-spec.md "Limits").

Nesting deeper than the depth limit stops the composer (ruamel's ``max_depth``) and, for flow
style, the scanner, before Python's stack is at risk; aliases may repeat only a budget of values
per document, counted while composing, so a YAML "billion laughs" is refused at the alias that
crosses the budget, long before anything expands it. ``yaml_issue`` turns ruamel's errors (these
included) into a ``SpecIssue`` with the file and line.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError, MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import CollectionNode
from ruamel.yaml.scanner import RoundTripScanner

from provisiond.core.errors import SpecIssue
from provisiond.core.limits import SpecLimits


def bounded_yaml(limits: SpecLimits) -> YAML:
    yaml = YAML(typ="rt")
    yaml.max_depth = limits.max_depth + 1  # ruamel counts the scalar at the bottom as a level
    yaml.Scanner = _flow_depth_scanner(limits.max_depth)
    yaml.Composer = _alias_budget_composer(limits.max_alias_nodes)
    return yaml


def _flow_depth_scanner(max_depth: int) -> type[RoundTripScanner]:
    """A scanner that stops at flow nesting (``[[[...``) beyond ``max_depth``.

    The composer's ``max_depth`` alone comes too late for flow style: the scanner looks ahead
    through every ``[`` that may start a simple key, and its bookkeeping is quadratic in the
    flow depth (a second for a thousand levels) before the composer sees the first node.
    """

    class FlowDepthScanner(RoundTripScanner):
        def fetch_flow_collection_start(self, TokenClass: Any, to_push: Any) -> None:  # noqa: N803 - ruamel's parameter name
            if self.flow_level >= max_depth:
                raise MaxDepthExceededError(
                    None, None, "flow nesting too deep", self.reader.get_mark()
                )
            super().fetch_flow_collection_start(TokenClass, to_push)

    return FlowDepthScanner


class AliasBudgetError(ComposerError):
    """Aliases repeat more values than the budget allows (a YAML "billion laughs")."""


def _alias_budget_composer(budget: int) -> type[Composer]:
    """A composer that counts the values aliases repeat, and stops once a document exceeds
    ``budget``. Composing shares an anchored node instead of copying it, so a bomb is cheap
    to compose; what explodes is everything that walks the tree afterwards."""

    class AliasBudgetComposer(Composer):
        repeated = 0

        def compose_document(self) -> Any:
            self.repeated = 0
            return super().compose_document()

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.parser.check_event(AliasEvent):
                event = self.parser.peek_event()
                node = self.anchors.get(event.anchor)
                if node is not None:
                    if isinstance(node, CollectionNode) and node.end_mark is None:
                        raise AliasBudgetError(
                            None,
                            None,
                            f"alias *{event.anchor} is inside its own anchor: a value cannot "
                            "contain itself",
                            event.start_mark,
                        )
                    self._repeat(node, event.start_mark)
            return super().compose_node(parent, index)

        def _repeat(self, node: Any, mark: Any) -> None:
            # Walks the repeated node iteratively, and only until the budget is spent: the work
            # per document is bounded by the budget, also for an alias inside its own anchor.
            stack = [node]
            while stack:
                current = stack.pop()
                self.repeated += 1
                if self.repeated > budget:
                    raise AliasBudgetError(
                        None,
                        None,
                        f"aliases repeat more than {budget} values in this document (a YAML alias "
                        "bomb?); write the values out or use fewer aliases",
                        mark,
                    )
                if isinstance(current.value, list):
                    for item in current.value:
                        stack.extend(item if isinstance(item, tuple) else (item,))

    return AliasBudgetComposer


def yaml_issue(file: str, exc: MarkedYAMLError, limits: SpecLimits) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, MaxDepthExceededError):
        return SpecIssue(
            file, line, "", f"nesting deeper than {limits.max_depth} levels (the limit)"
        )
    if isinstance(exc, AliasBudgetError):
        return SpecIssue(file, line, "", str(exc.problem))
    parts = [p for p in (exc.context, exc.problem) if p]
    return SpecIssue(file, line, "", "invalid YAML: " + ", ".join(parts))
