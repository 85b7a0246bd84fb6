"""Events and commands with the real runtime: a reconciler converging the cps-gpu example on the
Proxmox simulator (real proxmoxer over verified HTTPS) publishes through a real Mosquitto.

The pieces are assembled here the way ``app`` will (see docs/mqtt.md, "Wiring").
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jsonschema

from mosquitto_broker import Broker
from mqtt_support import PREFIX, Watcher, running, settings, until, watching
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_commands import ReconcilerCommands
from provisiond.adapters.mqtt_events import Event, EventFeed
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.adapters.specsource import SpecFiles
from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as core_plan
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.reconciler import Reconciler
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "mqtt-event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
DETAIL = f"{PREFIX}/status/detail"
FAST = ExecutorConfig(
    poll_initial=0.005,
    poll_max=0.01,
    retry_initial=0.01,
    retry_max=0.1,
    backoff_base=0.2,
    backoff_max=2.0,
    requeue_after=0.2,
)


class Tee:
    """The feed's sink: records what was handed to the publisher, then hands it on."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher
        self.sent: list[Event] = []

    def publish_event(self, event: Event) -> None:
        self.sent.append(event)
        self.publisher.publish_event(event)

    def update_status(self, **fields: Any) -> None:
        self.publisher.update_status(**fields)


def planner(desired: DesiredState, observed: ObservedState) -> Plan:
    return core_plan(desired, observed, now=time.time())


def build(sim: SimHandle, feed: EventFeed) -> tuple[ProxmoxClient, Reconciler]:
    token_id, _, secret = sim.token.rpartition("=")
    client = ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=token_id, secret=secret, verify=sim.ca_path)
    )
    observer = ProxmoxObserver(client, cache_ttl=300.0)
    actions = ProxmoxActions(client, invalidate=observer.invalidate)
    executor = Executor(observer, actions, config=FAST, listener=feed)
    reconciler = Reconciler(
        SpecFiles([EXAMPLES / "cps-gpu" / "fleet.yaml"]),
        observer,
        executor,
        planner,
        interval=600.0,  # ten minutes: any prompt cycle below was triggered
        follow_up=0.05,
        debounce=0.01,
        listener=feed,
    )
    return client, reconciler


def mutating(sim: SimHandle) -> dict[tuple[str, str], int]:
    return {k: n for k, n in sim.request_counts().items() if k[0] != "GET" and n}


def detail(w: Watcher) -> dict[str, Any]:
    return w.on(DETAIL)[-1].json() if w.on(DETAIL) else {}


async def command(w: Watcher, name: str) -> None:
    assert w.client is not None
    await w.client.publish(f"{PREFIX}/cmd/{name}", b"", qos=1)


async def test_converge_events_in_order_then_pause_reconcile_resume(broker: Broker) -> None:
    with running_simulator("cps-gpu", time_scale=0.005) as sim:
        # the wiring order app uses: publisher → feed → runtime → commands
        pub = MqttPublisher(settings(broker), prefix=PREFIX)
        tee = Tee(pub)
        feed = EventFeed(tee)
        client, reconciler = build(sim, feed)
        pub.set_commands(ReconcilerCommands(reconciler))
        stop = asyncio.Event()
        try:
            async with watching(broker) as w, running(pub):
                await until(lambda: pub.connected)
                loop = asyncio.ensure_future(reconciler.run(stop))
                await w.wait_for(lambda w: detail(w).get("converged") is True, within=90)
                await until(lambda: pub.buffered == 0)
                await w.wait_for(lambda w: len(w.events()) >= len(tee.sent))
                _check_converge_events(w, tee)
                cycles = reconciler.last.id if reconciler.last else 0

                # drift while paused: reported, not acted on
                vm = next(iter(reconciler.desired.all_vms()))  # type: ignore[union-attr]
                sim.set_power(vm.vmid, "stopped")
                sim.reset_counts()
                await command(w, "pause")
                await w.wait_for(lambda w: detail(w).get("paused") is True)
                seen = len(w.events())
                await command(w, "reconcile")  # a cycle now, not in ten minutes
                await w.wait_for(
                    lambda w: any(
                        e["kind"] == "drift_found" and e["object"]["vmid"] == vm.vmid
                        for e in w.events()[seen:]
                    ),
                    within=10,
                )
                assert reconciler.last is not None
                assert reconciler.last.id > cycles
                assert reconciler.last.read_only
                assert mutating(sim) == {}  # paused: no mutating Proxmox request
                assert detail(w)["paused"] is True

                seen = len(w.events())
                await command(w, "resume")
                await w.wait_for(
                    lambda w: any(
                        e["kind"] == "drift_resolved" and e["object"]["vmid"] == vm.vmid
                        for e in w.events()[seen:]
                    ),
                    within=30,
                )
                assert ("POST", "/nodes/{node}/qemu/{vmid}/status/start") in mutating(sim)
                await w.wait_for(lambda w: detail(w).get("converged") is True)
                assert detail(w)["paused"] is False
                for e in w.events():
                    VALIDATOR.validate(e)
                stop.set()
                await asyncio.wait_for(loop, 30)
        finally:
            stop.set()
            client.close()


def _check_converge_events(w: Watcher, tee: Tee) -> None:
    got = w.events()
    ids = [e["id"] for e in got]
    assert len(set(ids)) == len(ids)  # unique (no redelivery on a healthy connection)
    assert ids == [e.id for e in tee.sent]  # every event, in the order it happened (QoS 1)
    assert {m.topic.rsplit("/", 1)[1] for m in w.messages if "/events/" in m.topic} <= {
        e["kind"] for e in got
    }
    for e in got:
        VALIDATOR.validate(e)
    kinds = [e["kind"] for e in got]
    assert kinds.count("action_started") == kinds.count("action_succeeded") > 0
    assert "action_failed" not in kinds
    assert {"drift_found", "drift_resolved"} <= set(kinds)
    started: set[str] = set()
    for e in got:  # every action's start comes before its end
        if e["kind"] == "action_started":
            started.add(e["details"]["action_id"])
        elif e["kind"] == "action_succeeded":
            assert e["details"]["action_id"] in started
    clones = [
        e for e in got if e["kind"] == "action_succeeded" and e["details"]["action"] == "clone"
    ]
    assert clones
    assert all(e["object"]["type"] == "vm" and e["host"] for e in clones)
