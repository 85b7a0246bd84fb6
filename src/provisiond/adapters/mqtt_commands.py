"""MQTT commands: ``…/cmd/reconcile|pause|resume``, answered on ``…/cmd/result``.

A command's payload is empty or a JSON object ``{"secret": …, "id": …}``. When a command secret
is configured, a command without the right ``secret`` is refused (compared in constant time) and
logged once, as one line naming the command and why — never the payload. ``id`` (optional, up to
64 printable characters) is echoed in the answer so a caller can match it.

Rules:
- a *retained* command is refused: it would be replayed at every reconnect;
- ``pause`` and ``resume`` are state, accepted by every instance (leader or standby), so a
  failover keeps the pause; pause lives in the process, not in the MQTT session, so it survives
  reconnects; it takes effect from the next cycle (actions under way finish);
- ``reconcile`` acts, so only the leader obeys; a standby answers ``ignored``.

``ReconcilerCommands`` implements ``Commands`` on anything with the reconciler's ``read_only``
flag and ``trigger(reason)`` (``runtime.reconciler.Reconciler``), keeping the configured
read-only mode and the MQTT pause apart so a SIGHUP reload does not lift a pause.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger("provisiond.mqtt")

COMMANDS = ("reconcile", "pause", "resume")
_MAX_ID = 64


class Commands(Protocol):
    """What MQTT commands reach; the app wires it to the reconciler (``ReconcilerCommands``)."""

    def trigger(self, reason: str) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def is_paused(self) -> bool: ...

    def is_leader(self) -> bool: ...


class ReconcileControl(Protocol):
    """The reconciler's knobs a pause needs (``Reconciler.read_only``, ``Reconciler.trigger``)."""

    read_only: bool

    def trigger(self, reason: str) -> None: ...


def _always_leader() -> bool:
    return True


class ReconcilerCommands:
    """``Commands`` for one reconciler. ``leader`` tells whether this instance leads (the
    elector's state; without leader election: always)."""

    def __init__(
        self, control: ReconcileControl, *, leader: Callable[[], bool] = _always_leader
    ) -> None:
        self._control = control
        self._leader = leader
        self._configured_read_only = control.read_only
        self._paused = False

    def trigger(self, reason: str) -> None:
        self._control.trigger(reason)

    def pause(self) -> None:
        self._paused = True
        self._control.read_only = True

    def resume(self) -> None:
        self._paused = False
        self._control.read_only = self._configured_read_only
        self._control.trigger("mqtt resume")

    def is_paused(self) -> bool:
        return self._paused

    def is_leader(self) -> bool:
        return self._leader()

    def set_configured_read_only(self, read_only: bool) -> None:
        """SIGHUP: the settings' ``daemon.read_only`` changed; a pause stays in force."""
        self._configured_read_only = read_only
        self._control.read_only = read_only or self._paused


@dataclass(frozen=True, slots=True)
class Answer:
    """The ``…/cmd/result`` message for one command."""

    command: str
    result: str  # "ok" | "refused" | "ignored"
    reason: str
    request_id: str | None
    paused: bool

    def payload(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "result": self.result,
            "reason": self.reason,
            "id": self.request_id,
            "paused": self.paused,
        }


class CommandHandler:
    """Checks and carries out one command message; never raises on bad input."""

    def __init__(self, commands: Commands, *, secret: str | None = None) -> None:
        self._commands = commands
        self._secret = secret.encode() if secret else None

    def handle(self, command: str, payload: bytes, *, retained: bool = False) -> Answer:
        body, problem = _parse(payload)
        request_id = _request_id(body)
        if command not in COMMANDS:
            return self._refuse(command, f"unknown command {command!r}", request_id)
        if retained:
            return self._refuse(command, "retained commands are not obeyed", request_id)
        if self._secret is not None:
            given = body.get("secret") if body is not None else None
            if not isinstance(given, str):
                why = problem or "the command secret is missing"
                return self._refuse(command, why, request_id)
            if not hmac.compare_digest(given.encode(), self._secret):
                return self._refuse(command, "wrong command secret", request_id)
        c = self._commands
        if command == "reconcile":
            if not c.is_leader():
                log.info("mqtt_command_ignored", command=command, why="standby")
                return Answer(
                    command,
                    "ignored",
                    "standby: only the leader reconciles",
                    request_id,
                    c.is_paused(),
                )
            c.trigger("mqtt")
            reason = "cycle triggered" + (
                " (paused: observe and report only)" if c.is_paused() else ""
            )
        elif command == "pause":
            c.pause()
            reason = "paused: observing and reporting, acting on nothing"
        else:
            c.resume()
            reason = "resumed"
        log.info("mqtt_command", command=command, request_id=request_id)
        return Answer(command, "ok", reason, request_id, c.is_paused())

    def _refuse(self, command: str, why: str, request_id: str | None) -> Answer:
        log.warning("mqtt_command_refused", command=command, why=why)
        return Answer(command, "refused", why, request_id, self._commands.is_paused())


def _parse(payload: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object in ``payload`` (``{}`` when empty), or ``None`` and why not."""
    if not payload.strip():
        return {}, None
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None, "the payload is not JSON"
    if not isinstance(body, dict):
        return None, "the payload is not a JSON object"
    return body, None


def _request_id(body: dict[str, Any] | None) -> str | None:
    rid = body.get("id") if body is not None else None
    if isinstance(rid, str) and 0 < len(rid) <= _MAX_ID and rid.isprintable():
        return rid
    return None
