"""The event feed on plain runtime values (state in → events out), and the MQTT settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from provisiond.adapters.mqtt_events import Event, EventFeed
from provisiond.adapters.mqtt_settings import MqttSettings
from provisiond.core.actions import Configure, Migrate
from provisiond.core.errors import SpecError, SpecIssue
from provisiond.core.observed import ObservedState, Unobserved
from provisiond.core.plan import Blocked, Plan
from provisiond.runtime.reconciler import CycleResult
from provisiond.runtime.results import ActionResult, Outcome

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "mqtt-event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

CONFIGURE = Configure(
    id="configure:101",
    reason="cores 2 -> 4",
    vmid=101,
    name="vm101",
    host="pve1",
    values={"cores": "4", "cipassword": "hunter2-secret"},
)
MIGRATE = Migrate(
    id="migrate:102", reason="rebalance", vmid=102, name="vm102", source="pve1", target="pve2",
    online=True,
)  # fmt: skip


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.status: dict[str, Any] = {}

    def publish_event(self, event: Event) -> None:
        self.events.append(event)

    def update_status(self, **fields: Any) -> None:
        self.status.update(fields)

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events]


def cycle(n: int, plan: Plan | None, **kw: Any) -> CycleResult:
    return CycleResult(n, 0.1, ("timer",), plan=plan, **kw)


def test_drift_blocked_spec_and_errors_are_reported_when_they_appear_and_go() -> None:
    sink = Sink()
    feed = EventFeed(sink, clock=lambda: 1_700_000_000.0)
    blocked = Blocked(code="disruption_limit", reason="2 moves at once max", vmid=103, name="v3")
    spec_error = SpecError([SpecIssue("fleet.yaml", 7, "spec.pools[0]", "bad")])
    feed.cycle_finished(cycle(1, Plan(actions=(CONFIGURE, MIGRATE), blocked=(blocked,))))
    feed.cycle_finished(  # the same drift again: nothing new to say; the spec broke
        cycle(2, Plan(actions=(CONFIGURE, MIGRATE), blocked=(blocked,)), spec_error=spec_error)
    )
    feed.cycle_finished(cycle(3, None, error="ObservationError: boom", spec_error=spec_error))
    feed.cycle_finished(cycle(4, Plan(actions=(MIGRATE,))))
    feed.cycle_finished(cycle(5, Plan()))
    assert sink.kinds() == [
        "drift_found", "drift_found", "blocked",
        "spec_invalid",
        "reconcile_failed",
        "spec_valid", "drift_resolved", "unblocked",
        "drift_resolved",
    ]  # fmt: skip
    assert sink.events[0].payload()["object"] == {"type": "vm", "name": "vm101", "vmid": 101}
    assert sink.events[3].reason == "fleet.yaml:7: spec.pools[0]: bad"
    assert sink.status["converged"] is True
    assert sink.status["drift"] == 0
    for e in sink.events:
        VALIDATOR.validate(e.payload())
    assert len({e.id for e in sink.events}) == len(sink.events)


def test_an_incomplete_observation_resolves_nothing() -> None:
    sink = Sink()
    feed = EventFeed(sink)
    feed.cycle_finished(cycle(1, Plan(actions=(MIGRATE,))))
    partial = ObservedState(vms=(), unobserved=Unobserved(lists=("cluster/resources",)))
    feed.cycle_finished(cycle(2, Plan(), observed=partial))
    assert sink.kinds() == ["drift_found"]


def test_action_events_carry_keys_never_config_values() -> None:
    sink = Sink()
    feed = EventFeed(sink)
    feed.action_started(CONFIGURE)
    feed.action_finished(ActionResult(CONFIGURE, Outcome.FAILED, "500 locked", 1.25))
    feed.action_finished(ActionResult(MIGRATE, Outcome.ADOPTED, seconds=3.0))
    feed.action_finished(ActionResult(MIGRATE, Outcome.REQUEUED))
    feed.leadership_changed(leader=False)
    assert sink.kinds() == [
        "action_started", "action_failed", "action_succeeded", "action_deferred",
        "leadership_changed",
    ]  # fmt: skip
    failed = sink.events[1].payload()
    assert failed["details"]["keys"] == ["cipassword", "cores"]
    assert failed["details"]["detail"] == "500 locked"
    assert failed["result"] == "failed"
    assert failed["host"] == "pve1"
    assert sink.events[2].payload()["host"] == "pve2"  # a move: its target
    assert sink.events[2].payload()["details"]["source"] == "pve1"
    assert sink.status["role"] == "standby"
    for e in sink.events:
        VALIDATOR.validate(e.payload())
        assert "hunter2" not in json.dumps(e.payload())


def test_settings_read_secrets_from_files_and_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    s = MqttSettings(url="mqtts://broker.lan", username="pd", password_file=pw)
    assert s.password is not None
    assert s.password.get_secret_value() == "s3cret-pw"
    assert "s3cret" not in repr(s)
    assert (s.host, s.port, s.tls) == ("broker.lan", 8883, True)
    assert s.prefix("lab") == "provisiond/lab"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-command-secret").write_text("cmd-sec")
    (creds / "mqtt-password").write_text("cred-pw")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = MqttSettings(url="mqtt://10.0.0.5:1884", username="pd")
    assert s.password is not None
    assert s.password.get_secret_value() == "cred-pw"
    assert s.command_secret is not None
    assert s.secret_values() == ["cred-pw", "cmd-sec"]
    assert (s.port, s.tls, s.enabled) == (1884, False, True)
    assert not MqttSettings().enabled


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "http://x"}, "String should match pattern"),
        ({"url": "mqtt://x", "ca_file": "/ca.pem"}, "need an mqtts:// url"),
        ({"url": "mqtts://x", "key_file": "/k.pem"}, "needs mqtt.cert_file"),
        ({"url": "mqtt://x", "password": "p"}, "needs mqtt.username"),
        ({"url": "mqtt://x", "username": "u", "password_file": "/nonexistent"}, "cannot read"),
    ],
)
def test_settings_errors_name_the_problem_never_the_secret(
    kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        MqttSettings.model_validate(kw)
    assert message in str(err.value)
    assert "'p'" not in str(err.value.errors(include_input=False))
