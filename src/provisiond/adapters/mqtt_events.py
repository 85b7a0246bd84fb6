"""MQTT events: what the daemon did, as JSON records, made from the runtime's listener hooks.

``EventFeed`` is both the executor's ``ActionListener`` and the reconciler's ``CycleListener``
(``provisiond.runtime``). Adapters may not import the runtime (import-linter), so the results it
reads are described structurally in ``adapters.results`` (``FinishedAction``, ``FinishedCycle``);
the runtime's frozen dataclasses satisfy them, which mypy checks where ``app`` plugs the feed in.

Invariants:
- every event has a fresh unique ``id`` (a UUID): a consumer de-duplicates QoS 1 redeliveries
  and re-sends after a reconnect by it;
- the feed never blocks and never raises into the runtime: it hands records to an ``EventSink``
  (``MqttPublisher.publish_event``), which buffers;
- level-based reporting: ``drift_found``/``blocked``/``spec_invalid`` are sent when something
  *appears* (compared with the previous cycle), ``drift_resolved``/``unblocked``/``spec_valid``
  when it goes away — not once per cycle while it lasts;
- no Proxmox config values travel (a ``configure`` can carry cloud-init secrets): only keys;
- with replicas (``publishing``: the elector's leadership) only the leader publishes events —
  a standby acts on nothing, and its drift/blocked/spec events would repeat the leader's under
  other ids, which consumers cannot de-duplicate. The one exception is ``leadership_changed``,
  which each replica says about itself (``details.identity``). A standby keeps the level state
  warm (so a drift that resolves right after a failover is reported resolved), and on becoming
  leader it announces once, at its next cycle, everything that is drifted, blocked, invalid or
  failing — the previous leader may have died before reporting it, and a repeat ``found`` is
  harmless to a level-based consumer while a missing one is not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from provisiond.adapters.results import FinishedAction, FinishedCycle
from provisiond.core.actions import (
    Action,
    Configure,
    Cordon,
    Drain,
    GpuMove,
    HaRuleCreate,
    HaRuleDelete,
    HaRuleUpdate,
    Label,
    Migrate,
    Reboot,
    TaintNode,
    Uncordon,
    hosts_of,
)
from provisiond.core.errors import SpecError
from provisiond.core.plan import Plan


class EventKind(StrEnum):
    ACTION_STARTED = "action_started"
    ACTION_SUCCEEDED = "action_succeeded"  # result: succeeded | adopted
    ACTION_FAILED = "action_failed"
    ACTION_DEFERRED = "action_deferred"  # result: requeued | skipped | interrupted
    DRIFT_FOUND = "drift_found"
    DRIFT_RESOLVED = "drift_resolved"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    SPEC_INVALID = "spec_invalid"
    SPEC_VALID = "spec_valid"
    RECONCILE_FAILED = "reconcile_failed"
    LEADERSHIP_CHANGED = "leadership_changed"


def rfc3339(ts: float) -> str:
    """UTC, millisecond precision, ``Z`` suffix."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One published record; ``payload()`` is its JSON object (docs/mqtt-event.schema.json)."""

    kind: EventKind
    time: float
    reason: str
    object: Mapping[str, Any] | None = None  # {"type": "vm"|"node", "name": …, "vmid": …}
    host: str | None = None
    result: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": rfc3339(self.time),
            "kind": str(self.kind),
            "object": dict(self.object) if self.object is not None else None,
            "host": self.host,
            "reason": self.reason,
            "result": self.result,
            "details": dict(self.details),
        }


class EventSink(Protocol):
    """Where events go (``MqttPublisher``): both calls return at once."""

    def publish_event(self, event: Event) -> None: ...

    def update_status(self, **fields: Any) -> None: ...


# -- action → (object, host, details) ---------------------------------------------------------


def action_object(action: Action) -> tuple[dict[str, Any], str | None]:
    """The object an action is about and the Proxmox host it runs on (target for moves)."""
    match action:
        case Cordon() | Drain() | Uncordon() | Label() | TaintNode():
            return {"type": "node", "name": action.node, "vmid": action.vmid}, None
        case HaRuleCreate() | HaRuleUpdate() | HaRuleDelete():
            return {"type": "ha_rule", "name": action.name, "vmid": None}, None
        case _:
            return _vm(action.name, action.vmid), hosts_of(action)[-1]


def _vm(name: str, vmid: int) -> dict[str, Any]:
    return {"type": "vm", "name": name, "vmid": vmid}


def action_details(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action_id": action.id, "action": action.kind}
    if action.after:
        out["after"] = list(action.after)
    match action:
        case Migrate() | GpuMove():
            out["source"] = action.source
        case Configure():
            out["keys"] = sorted(action.values)  # keys only: values may hold secrets
            if action.delete:
                out["delete"] = list(action.delete)
        case Reboot():
            out["keys"] = list(action.keys)
        case _:
            pass
    return out


_OUTCOME_KIND = {
    "succeeded": EventKind.ACTION_SUCCEEDED,
    "adopted": EventKind.ACTION_SUCCEEDED,
    "failed": EventKind.ACTION_FAILED,
}


@dataclass(slots=True)
class _Seen:
    drift: dict[int, dict[str, Any]] = field(default_factory=dict)  # vmid -> object
    blocked: dict[tuple[str, int | None, str | None], str] = field(default_factory=dict)
    spec_issues: tuple[str, ...] | None = None  # None: the spec is valid
    error: str | None = None


def _always() -> bool:
    return True


class EventFeed:
    """Turns runtime callbacks into events for ``sink``, and keeps the status detail current.
    ``publishing`` says whether this instance publishes events (replicas: while it leads)."""

    def __init__(
        self,
        sink: EventSink,
        *,
        clock: Callable[[], float] = time.time,
        publishing: Callable[[], bool] = _always,
        identity: str | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._publishing = publishing
        self._identity = identity
        self._seen = _Seen()
        self._announce = False  # a new leader re-announces what it sees, once

    def _emit(self, kind: EventKind, reason: str, **kw: Any) -> None:
        if self._publishing():
            self._sink.publish_event(Event(kind=kind, time=self._clock(), reason=reason, **kw))

    # -- ActionListener ------------------------------------------------------------------------
    def plan_started(self, plan: Plan) -> None:
        """Nothing to publish: each action is reported as it starts."""
        del plan

    def action_started(self, action: Action) -> None:
        obj, host = action_object(action)
        self._emit(
            EventKind.ACTION_STARTED,
            action.reason,
            object=obj,
            host=host,
            result="started",
            details=action_details(action),
        )

    def action_finished(self, result: FinishedAction) -> None:
        outcome = str(result.outcome)
        obj, host = action_object(result.action)
        details = action_details(result.action)
        details["seconds"] = round(result.seconds, 3)
        if result.detail:
            details["detail"] = result.detail
        self._emit(
            _OUTCOME_KIND.get(outcome, EventKind.ACTION_DEFERRED),
            result.action.reason,
            object=obj,
            host=host,
            result=outcome,
            details=details,
        )

    # -- CycleListener -------------------------------------------------------------------------
    def cycle_finished(self, result: FinishedCycle) -> None:
        # a new leader's first cycle: what was seen as standby is new to the event stream
        announce = self._announce and self._publishing()
        if announce:
            self._announce = False
        self._spec(result.spec_error, announce=announce)
        self._error(result, announce=announce)
        if result.plan is not None:
            self._drift(result.plan, complete=not result.incomplete, announce=announce)
            self._blocked(result.plan, announce=announce)
        counts: dict[str, Any] = {}
        if result.plan is not None:
            counts["plan"] = result.plan.summary()
        if result.report is not None:
            counts["outcomes"] = result.report.counts()
        self._sink.update_status(
            last_reconcile=rfc3339(self._clock()),
            last_result=result.result,
            cycle=result.id,
            converged=result.converged,
            read_only=result.read_only,
            spec_valid=result.spec_error is None,
            drift=len(self._seen.drift),
            counts=counts,
        )

    def _spec(self, error: SpecError | None, *, announce: bool) -> None:
        issues = tuple(str(i) for i in error.issues) if error is not None else None
        before = self._seen.spec_issues
        self._seen.spec_issues = issues
        if issues is not None and (issues != before or announce):
            self._emit(
                EventKind.SPEC_INVALID,
                issues[0] if issues else "invalid spec",
                object={"type": "spec", "name": None, "vmid": None},
                result="invalid",
                details={"issues": list(issues), "using": "last good spec"},
            )
        elif issues is None and before is not None:
            self._emit(
                EventKind.SPEC_VALID,
                "the spec loads again",
                object={"type": "spec", "name": None, "vmid": None},
                result="valid",
            )

    def _error(self, result: FinishedCycle, *, announce: bool) -> None:
        before, self._seen.error = self._seen.error, result.error
        if result.error is not None and (result.error != before or announce):
            self._emit(
                EventKind.RECONCILE_FAILED,
                result.error,
                result="error",
                details={"cycle": result.id},
            )

    def _drift(self, plan: Plan, *, complete: bool, announce: bool) -> None:
        now: dict[int, list[Action]] = {}
        for action in plan.actions:
            now.setdefault(action.vmid, []).append(action)
        seen = self._seen.drift
        for vmid, actions in now.items():
            if vmid in seen and not announce:
                continue
            obj, host = action_object(actions[0])
            seen[vmid] = obj
            self._emit(
                EventKind.DRIFT_FOUND,
                "; ".join(dict.fromkeys(a.reason for a in actions)),
                object=obj,
                host=host,
                result="drift",
                details={"actions": [a.kind for a in actions]},
            )
        if not complete:
            return  # what was not seen is not resolved
        for vmid in [v for v in seen if v not in now]:
            obj = seen.pop(vmid)
            self._emit(EventKind.DRIFT_RESOLVED, "matches the spec", object=obj, result="resolved")

    def _blocked(self, plan: Plan, *, announce: bool) -> None:
        now = {(b.code, b.vmid, b.name): b for b in plan.blocked}
        seen = self._seen.blocked
        for key, b in now.items():
            if key in seen and not announce:
                continue
            seen[key] = b.reason
            obj = {"type": "vm", "name": b.name, "vmid": b.vmid} if b.vmid or b.name else None
            self._emit(
                EventKind.BLOCKED,
                b.reason,
                object=obj,
                result=b.code,
                details={"code": b.code, **({"fleet": b.fleet} if b.fleet else {})},
            )
        for key in [k for k in seen if k not in now]:
            code, vmid, name = key
            seen.pop(key)
            obj = {"type": "vm", "name": name, "vmid": vmid} if vmid or name else None
            self._emit(
                EventKind.UNBLOCKED,
                "no longer blocked",
                object=obj,
                result=code,
                details={"code": code},
            )

    # -- leadership (leader election calls this) ----------------------------------------------
    def leadership_changed(self, *, leader: bool, reason: str = "") -> None:
        """Published by every replica about itself, leader or not."""
        role = "leader" if leader else "standby"
        self._announce = leader
        self._sink.update_status(role=role)
        details = {"identity": self._identity} if self._identity is not None else {}
        event = Event(
            kind=EventKind.LEADERSHIP_CHANGED,
            time=self._clock(),
            reason=reason or f"this instance is now {role}",
            result=role,
            details=details,
        )
        self._sink.publish_event(event)
