"""Replicas (leader election) against a real Mosquitto: per-instance presence (removed at a
clean stop, the will's ``offline`` kept after a kill -9), ``P/status`` owned by the leader alone,
handover without a flap, the leader's re-assertion; and the feed's leader-only events (plain
values in, events out)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mosquitto_broker import USERS, Broker
from mqtt_support import (
    PREFIX,
    RecordingCommands,
    Watcher,
    retained,
    running,
    settings,
    until,
    watching,
)
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_events import Event, EventFeed
from provisiond.core.actions import Configure
from provisiond.core.plan import Blocked, Plan
from provisiond.runtime.reconciler import CycleResult

STATUS = f"{PREFIX}/status"
DETAIL = f"{PREFIX}/status/detail"
RESULT = f"{PREFIX}/cmd/result"
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "mqtt-event.schema.json").read_text())


def instance(name: str) -> str:
    return f"{PREFIX}/instances/{name}/status"


def replica(broker: Broker, name: str, **kw: Any) -> MqttPublisher:
    return MqttPublisher(
        settings(broker, client_id=None),
        prefix=PREFIX,
        instance=name,
        handover_wait=kw.pop("handover_wait", 3.0),
        release_wait=kw.pop("release_wait", 5.0),
        **kw,
    )


def payloads(w: Watcher, topic: str) -> list[bytes]:
    return [m.payload for m in w.on(topic)]


@contextlib.asynccontextmanager
async def leading(pub: MqttPublisher) -> AsyncIterator[asyncio.Event]:
    """Run ``pub`` as the leader; on exit, stop it the way the elector does: stop first, the
    release (``set_leader(False)``) a moment later."""
    async with running(pub) as stop:
        pub.set_leader(True)
        try:
            yield stop
        finally:
            stop.set()
            await asyncio.sleep(0.2)
            pub.set_leader(False)


async def test_the_leader_owns_status_each_replica_reports_itself(broker: Broker) -> None:
    a, b = replica(broker, "pd-a"), replica(broker, "pd-b")
    b.set_commands(RecordingCommands(leader=False))
    async with watching(broker) as w:
        async with leading(a):
            async with running(b):
                await w.wait_for(lambda w: payloads(w, STATUS) == [b"online"])
                await w.wait_for(lambda w: _claimant(w) == "pd-a")
                assert w.on(DETAIL)[-1].json()["role"] == "leader"
                await w.wait_for(lambda w: payloads(w, instance("pd-a"))[-1:] == [b"online"])
                await w.wait_for(lambda w: payloads(w, instance("pd-b"))[-1:] == [b"online"])
                b.update_status(converged=False)
                await w.wait_for(lambda w: bool(w.on(instance("pd-b") + "/detail")))
                standby = w.on(instance("pd-b") + "/detail")[-1].json()
                assert (standby["role"], standby["identity"]) == ("standby", "pd-b")
                assert a.client_id == "provisiond-pd-a"
                assert a.cluster is not None
                assert a.cluster.client_id == "provisiond-pd-a-leader"
                # a command is answered by each replica, naming itself
                assert w.client is not None
                await w.client.publish(f"{PREFIX}/cmd/reconcile", b"", qos=1)
                await w.wait_for(lambda w: bool(w.on(RESULT)))
                answer = w.on(RESULT)[-1].json()
                assert (answer["instance"], answer["result"]) == ("pd-b", "ignored")
            # the standby's clean stop: its own topic goes offline (then is cleared), the
            # cluster's stays online
            await w.wait_for(lambda w: payloads(w, instance("pd-b"))[-2:] == [b"offline", b""])
            await asyncio.sleep(0.3)
            assert payloads(w, STATUS) == [b"online"]
            assert all(m.json()["identity"] == "pd-a" for m in w.on(DETAIL))
        # the leader alone, released: no one acts now, so the cluster is offline
        await w.wait_for(lambda w: payloads(w, STATUS)[-1:] == [b"offline"])
        assert payloads(w, instance("pd-a"))[-2:] == [b"offline", b""]


async def test_a_clean_stop_says_offline_then_removes_the_replica_topics(broker: Broker) -> None:
    """Identities are pod names, new at every rollout: a replica that stops cleanly leaves no
    retained topic behind, or each rollout would add two dead ones for every new subscriber."""
    a, b = replica(broker, "pd-a"), replica(broker, "pd-b")
    mine = {instance("pd-b"), instance("pd-b") + "/detail"}
    async with watching(broker) as w, leading(a):
        async with running(b):
            await w.wait_for(lambda w: bool(w.on(instance("pd-b") + "/detail")))
            await until(lambda: a.cluster is not None and a.cluster.others_alive() == ["pd-b"])
            before = len(w.messages)
        await w.wait_for(lambda w: payloads(w, instance("pd-b"))[-1:] == [b""])
        # live subscribers see the offline, then the removal: the detail first, the status last
        last = [(m.topic, m.payload) for m in w.messages[before:] if m.topic in mine]
        assert last == [
            (instance("pd-b"), b"offline"),
            (instance("pd-b") + "/detail", b""),
            (instance("pd-b"), b""),
        ]
        # the leader's handover check counts it gone, as with an offline
        await until(lambda: a.cluster is not None and a.cluster.others_alive() == [])
        # a consumer arriving now: the leader's two retained topics, nothing of pd-b
        late = await retained(broker, f"{PREFIX}/instances/#")
        assert all(m.retain for m in late)
        assert sorted(m.topic for m in late) == [instance("pd-a"), instance("pd-a") + "/detail"]
    assert await retained(broker, f"{PREFIX}/instances/#") == []
    # the cluster's P/status is not an instance's: its offline stays, as without replicas
    assert [(m.topic, m.payload) for m in await retained(broker, STATUS)] == [(STATUS, b"offline")]


def _claimant(w: Watcher) -> str | None:
    return w.on(DETAIL)[-1].json().get("identity") if w.on(DETAIL) else None


async def test_a_release_with_a_live_standby_hands_over_without_offline(broker: Broker) -> None:
    a, b = replica(broker, "pd-a"), replica(broker, "pd-b")
    async with watching(broker) as w, running(b):
        async with leading(a):
            await w.wait_for(lambda w: payloads(w, STATUS) == [b"online"])
            await w.wait_for(lambda w: payloads(w, instance("pd-b"))[-1:] == [b"online"])
            await until(lambda: a.cluster is not None and a.cluster.others_alive() == ["pd-b"])
            # a releases as the context exits; the standby acquires at its next retry
            asyncio.get_running_loop().call_later(0.5, b.set_leader, True)
        await w.wait_for(lambda w: _claimant(w) == "pd-b")
        await w.wait_for(lambda w: payloads(w, instance("pd-a"))[-2:] == [b"offline", b""])
        assert b"offline" not in payloads(w, STATUS)
        assert payloads(w, STATUS)[-1] == b"online"
        b.set_leader(False)  # no replica left alive: offline
        await w.wait_for(lambda w: payloads(w, STATUS)[-1:] == [b"offline"])


async def test_a_handover_that_does_not_come_ends_in_offline(broker: Broker) -> None:
    a, b = replica(broker, "pd-a", handover_wait=0.5), replica(broker, "pd-b")
    async with watching(broker) as w, running(b):
        async with leading(a):
            await w.wait_for(lambda w: payloads(w, STATUS) == [b"online"])
            await until(lambda: a.cluster is not None and a.cluster.others_alive() == ["pd-b"])
        # b stays a standby (say its Lease API fails): after handover_wait, the truth
        await w.wait_for(lambda w: payloads(w, STATUS)[-1:] == [b"offline"])


async def test_the_leader_answers_a_stale_offline_with_online(broker: Broker) -> None:
    """Two clients' messages have no order: a former leader's late will must not stick."""
    a = replica(broker, "pd-a")
    async with watching(broker) as w, leading(a):
        await w.wait_for(lambda w: payloads(w, STATUS) == [b"online"])
        assert w.client is not None
        await w.client.publish(STATUS, b"offline", qos=1, retain=True)
        await w.wait_for(lambda w: payloads(w, STATUS) == [b"online", b"offline", b"online"])


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from provisiond.adapters.mqtt import MqttPublisher
    from provisiond.adapters.mqtt_settings import MqttSettings

    async def main() -> None:
        s = MqttSettings.model_validate_json(sys.argv[1])
        pub = MqttPublisher(s, prefix=sys.argv[2], instance=sys.argv[3])
        stop = asyncio.Event()
        task = asyncio.ensure_future(pub.run(stop))
        pub.set_leader(True)
        while not (pub.connected and pub.cluster.connected):
            await asyncio.sleep(0.01)
        print("connected", flush=True)
        await task

    asyncio.run(main())
    """
)


async def test_kill_9_of_the_leader_fires_both_wills(broker: Broker, tmp_path: Path) -> None:
    """The leader's two connections die with it: its instance and the cluster go offline."""
    password = tmp_path / "mqtt-password"
    password.write_text(USERS["provisiond"])
    config = settings(broker, client_id=None).model_dump(mode="json", exclude={"password"})
    config["password_file"] = str(password)
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    async with watching(broker) as w:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, json.dumps(config), PREFIX, "pd-a",
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = b"-"
            while line and line.strip() != b"connected":  # after its log lines
                line = await asyncio.wait_for(child.stdout.readline(), 20)
            assert line, "the child exited"
            await w.wait_for(lambda w: payloads(w, STATUS) == [b"online"])
            assert payloads(w, instance("pd-a")) == [b"online"]
            child.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await w.wait_for(lambda w: payloads(w, STATUS) == [b"online", b"offline"])
        await w.wait_for(lambda w: payloads(w, instance("pd-a")) == [b"online", b"offline"])
    # no clean stop, no removal: a consumer arriving now still sees the lost replica
    late = await retained(broker, f"{PREFIX}/instances/pd-a/#")
    assert {(m.topic, m.payload) for m in late if m.topic == instance("pd-a")} == {
        (instance("pd-a"), b"offline")
    }
    assert {m.topic for m in late} == {instance("pd-a"), instance("pd-a") + "/detail"}


# -- the event feed with replicas -------------------------------------------------------------


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


CONFIGURE = Configure(
    id="configure:101", reason="cores 2 -> 4", vmid=101, name="vm101", host="pve1",
    values={"cores": "4"},
)  # fmt: skip
BLOCKED = Blocked(code="disruption_limit", reason="2 moves at once max", vmid=103, name="v3")


def test_a_standby_publishes_only_its_leadership_and_a_new_leader_announces_what_it_sees() -> None:
    sink, leader = Sink(), [False]
    feed = EventFeed(sink, publishing=lambda: leader[0], identity="pd-b")
    drift = Plan(actions=(CONFIGURE,), blocked=(BLOCKED,))
    feed.action_started(CONFIGURE)
    feed.cycle_finished(CycleResult(1, 0.1, ("timer",), plan=drift))
    feed.cycle_finished(CycleResult(2, 0.1, ("timer",), plan=drift, error="boom"))
    assert sink.events == []  # the leader reports these; a standby would repeat them
    assert sink.status["drift"] == 1  # the standby's own detail stays current
    leader[0] = True
    feed.leadership_changed(leader=True)
    feed.cycle_finished(CycleResult(3, 0.1, ("leader_acquired",), plan=drift, error="boom"))
    feed.cycle_finished(CycleResult(4, 0.1, ("timer",), plan=drift, error="boom"))  # no repeat
    feed.cycle_finished(CycleResult(5, 0.1, ("timer",), plan=Plan()))
    assert sink.kinds() == [
        "leadership_changed",
        "reconcile_failed", "drift_found", "blocked",
        "drift_resolved", "unblocked",
    ]  # fmt: skip
    changed = sink.events[0].payload()
    assert (changed["result"], changed["details"]) == ("leader", {"identity": "pd-b"})
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for e in sink.events:
        validator.validate(e.payload())
    leader[0] = False
    feed.leadership_changed(leader=False)  # said about itself even as a standby
    feed.cycle_finished(CycleResult(6, 0.1, ("timer",), plan=drift))
    assert sink.kinds()[-1] == "leadership_changed"
    assert sink.events[-1].result == "standby"


def test_a_standby_reports_a_resolution_it_saw_after_becoming_leader() -> None:
    """The level state stays warm while standby: a drift the old leader announced and that
    resolves right after the failover is reported resolved by the new leader."""
    sink, leader = Sink(), [False]
    feed = EventFeed(sink, publishing=lambda: leader[0])
    feed.cycle_finished(CycleResult(1, 0.1, ("timer",), plan=Plan(actions=(CONFIGURE,))))
    leader[0] = True
    feed.leadership_changed(leader=True)
    feed.cycle_finished(CycleResult(2, 0.1, ("leader_acquired",), plan=Plan()))
    assert sink.kinds() == ["leadership_changed", "drift_resolved"]


def test_an_identity_that_is_no_topic_level_is_refused(broker: Broker) -> None:
    for bad in ("a/b", "a+", "#"):
        with pytest.raises(ValueError, match="MQTT topic level"):
            replica(broker, bad)
