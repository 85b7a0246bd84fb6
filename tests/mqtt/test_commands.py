"""Commands over a real Mosquitto: pause/resume/reconcile, the shared secret, retained commands,
and ``ReconcilerCommands`` driving a real ``Reconciler``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiomqtt
from structlog.testing import capture_logs

from mosquitto_broker import USERS, Broker
from mqtt_support import PREFIX, RecordingCommands, Watcher, running, settings, until, watching
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_commands import ReconcilerCommands

RESULT = f"{PREFIX}/cmd/result"
DETAIL = f"{PREFIX}/status/detail"
SECRET = "cmd-shared-secret-Q8w"


async def send(
    w: Watcher, command: str, body: dict[str, Any] | bytes | None = None, **kw: Any
) -> None:
    assert w.client is not None
    payload = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    await w.client.publish(f"{PREFIX}/cmd/{command}", payload, qos=1, **kw)


def answers(w: Watcher) -> list[dict[str, Any]]:
    return [m.json() for m in w.on(RESULT)]


async def test_pause_resume_reconcile_reach_commands_and_pause_survives_a_reconnect(
    broker: Broker,
) -> None:
    cmds = RecordingCommands()
    pub = MqttPublisher(settings(broker), prefix=PREFIX, commands=cmds)
    async with running(pub):
        await until(lambda: pub.connected)
        async with watching(broker) as w:
            await send(w, "pause", {"id": "p-1"})
            await w.wait_for(lambda w: len(answers(w)) == 1)
            assert answers(w)[0] == {
                "command": "pause",
                "result": "ok",
                "reason": "paused: observing and reporting, acting on nothing",
                "id": "p-1",
                "paused": True,
            }
            await w.wait_for(lambda w: w.on(DETAIL)[-1].json()["paused"] is True)
            await send(w, "reconcile")
            await w.wait_for(lambda w: len(answers(w)) == 2)
            assert answers(w)[1]["result"] == "ok"
            assert "paused" in answers(w)[1]["reason"]
        assert cmds.calls == ["pause", "trigger:mqtt"]

        broker.restart()  # a new session: the pause is the daemon's, not the broker's
        await until(lambda: pub.connects == 2 and pub.connected, within=15)
        async with watching(broker) as w:
            await w.wait_for(lambda w: bool(w.on(DETAIL)))
            assert w.on(DETAIL)[-1].json()["paused"] is True
            await send(w, "resume")
            await w.wait_for(lambda w: len(answers(w)) == 1)
            assert answers(w)[0]["paused"] is False
            await w.wait_for(lambda w: w.on(DETAIL)[-1].json()["paused"] is False)
    assert cmds.calls == ["pause", "trigger:mqtt", "resume"]


async def test_a_standby_ignores_reconcile_but_keeps_pause_state(broker: Broker) -> None:
    cmds = RecordingCommands(leader=False)
    pub = MqttPublisher(settings(broker), prefix=PREFIX, commands=cmds)
    async with running(pub), watching(broker) as w:
        await until(lambda: pub.connected)
        await send(w, "reconcile")
        await send(w, "pause")
        await w.wait_for(lambda w: len(answers(w)) == 2)
    assert [a["result"] for a in answers(w)] == ["ignored", "ok"]
    assert cmds.calls == ["pause"]


async def test_the_shared_secret_is_required(broker: Broker, tmp_path: Path) -> None:
    secret_file = tmp_path / "cmd-secret"
    secret_file.write_text(SECRET + "\n")
    cmds = RecordingCommands()
    pub = MqttPublisher(
        settings(broker, command_secret_file=secret_file), prefix=PREFIX, commands=cmds
    )
    with capture_logs() as logs:
        async with running(pub), watching(broker) as w:
            await until(lambda: pub.connected)
            await send(w, "pause")  # no secret
            await send(w, "pause", {"secret": "guess"})
            await send(w, "pause", b"not json")
            await w.wait_for(lambda w: len(answers(w)) == 3)
            assert cmds.calls == []
            await send(w, "pause", {"secret": SECRET, "id": "ok-1"})
            await w.wait_for(lambda w: len(answers(w)) == 4)
    assert [(a["result"], a["reason"]) for a in answers(w)] == [
        ("refused", "the command secret is missing"),
        ("refused", "wrong command secret"),
        ("refused", "the payload is not JSON"),
        ("ok", "paused: observing and reporting, acting on nothing"),
    ]
    assert cmds.calls == ["pause"]
    refused = [e for e in logs if e["event"] == "mqtt_command_refused"]
    assert len(refused) == 3  # one line per refused command
    assert all(e["log_level"] == "warning" and e["command"] == "pause" for e in refused)
    # neither secret appears in any log line or anything provisiond published
    published = [m for m in w.messages if m.topic == RESULT or "/cmd/" not in m.topic]
    assert published
    for s in (SECRET, USERS["provisiond"]):
        assert not [e for e in logs if s in repr(e)]
        assert not [m for m in published if s.encode() in m.payload]


async def test_retained_commands_are_not_obeyed(broker: Broker) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username="watcher", password=USERS["watcher"]
    ) as c:
        # (an empty retained payload would clear the topic: send an empty JSON object)
        await c.publish(f"{PREFIX}/cmd/pause", b"{}", qos=1, retain=True)
    cmds = RecordingCommands()
    pub = MqttPublisher(settings(broker), prefix=PREFIX, commands=cmds)
    async with watching(broker) as w, running(pub):
        await w.wait_for(lambda w: len(answers(w)) == 1)
    assert answers(w)[0]["result"] == "refused"
    assert answers(w)[0]["reason"] == "retained commands are not obeyed"
    assert cmds.calls == []


class Control:
    """The two reconciler knobs ``ReconcilerCommands`` needs (checked against the real
    ``Reconciler`` in ``test_reconciler_commands_drive_the_real_reconciler``)."""

    def __init__(self, read_only: bool = False) -> None:
        self.read_only = read_only
        self.triggers: list[str] = []

    def trigger(self, reason: str) -> None:
        self.triggers.append(reason)


def test_pause_is_kept_apart_from_the_configured_read_only_mode() -> None:
    control = Control()
    cmds = ReconcilerCommands(control)
    cmds.pause()
    assert control.read_only is True
    assert cmds.is_paused()
    cmds.set_configured_read_only(False)  # a SIGHUP reload does not lift the pause
    assert control.read_only is True
    cmds.resume()
    assert control.read_only is False
    assert control.triggers == ["mqtt resume"]
    cmds.set_configured_read_only(True)
    cmds.pause()
    cmds.resume()  # resume returns to the configured mode, not to acting
    assert control.read_only is True
    assert cmds.is_leader()
