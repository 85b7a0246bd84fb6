"""Helpers for the MQTT tests: settings for the test broker, a watcher client, a recording
``Commands``, running a publisher in the background."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from mosquitto_broker import USERS, Broker
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_settings import MqttSettings

PREFIX = "provisiond/test"


def settings(broker: Broker, **kw: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "url": broker.url,
        "username": "provisiond",
        "password": USERS["provisiond"],
        "client_id": "provisiond-test",
        "topic_prefix": PREFIX,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.3,
        "keepalive": 5,
    }
    base.update(kw)
    return MqttSettings.model_validate(base)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Watcher:
    """A second, real MQTT client subscribed to ``PREFIX/#``: what a consumer sees."""

    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    def events(self) -> list[dict[str, Any]]:
        return [m.json() for m in self.messages if m.topic.startswith(f"{PREFIX}/events/")]

    async def wait_for(self, pred: Callable[[Watcher], bool], within: float = 10.0) -> None:
        async def loop() -> None:
            while not pred(self):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), within)


@contextlib.asynccontextmanager
async def watching(broker: Broker, topic: str = f"{PREFIX}/#") -> AsyncIterator[Watcher]:
    w = Watcher()

    async def pump(client: aiomqtt.Client) -> None:
        async for m in client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else b""
            w.messages.append(Received(m.topic.value, payload, m.retain))
            w.changed.set()

    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username="watcher", password=USERS["watcher"]
    ) as client:
        w.client = client
        await client.subscribe(topic, qos=1)
        task = asyncio.ensure_future(pump(client))
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def retained(broker: Broker, topic: str = f"{PREFIX}/#") -> list[Received]:
    """What a consumer subscribing to ``topic`` now receives: the retained messages only.

    The broker sends them as it handles the SUBSCRIBE, before its SUBACK; a marker published
    after that comes back behind them on the same ordered QoS 1 stream, so it ends the list.
    """
    marker = f"{PREFIX}/marker/{uuid.uuid4().hex}"
    async with watching(broker, topic) as w:
        assert w.client is not None
        await w.client.subscribe(marker, qos=1)
        await w.client.publish(marker, b"", qos=1)
        await w.wait_for(lambda w: bool(w.on(marker)))
        return [m for m in w.messages if m.topic != marker]


@dataclass
class RecordingCommands:
    """The ``Commands`` seam recording what reached it (the reconciler side is tested apart)."""

    calls: list[str] = field(default_factory=list)
    paused: bool = False
    leader: bool = True

    def trigger(self, reason: str) -> None:
        self.calls.append(f"trigger:{reason}")

    def pause(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def is_paused(self) -> bool:
        return self.paused

    def is_leader(self) -> bool:
        return self.leader


@contextlib.asynccontextmanager
async def running(publisher: MqttPublisher) -> AsyncIterator[asyncio.Event]:
    """Run ``publisher`` in the background; on exit, stop it cleanly and wait for it."""
    stop = asyncio.Event()
    task = asyncio.ensure_future(publisher.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def until(pred: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``pred`` (plain attributes of the publisher: nothing signals their change)."""

    async def loop() -> None:
        while not pred():  # noqa: ASYNC110 - polling attributes, there is no event to wait on
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), within)
