"""The MQTT publisher: retained status with a last will, an event stream, commands (DESIGN §9).

A runnable (``run(stop)``, supervised by the manager). Topics under the prefix ``P``, for one
daemon (no leader election — systemd mode):
- ``P/status`` retained ``online`` after each connect; ``offline`` by the last will when the
  process dies, and published explicitly on a clean stop (a clean DISCONNECT sends no will);
- ``P/status/detail`` retained JSON: version, role, paused, last reconcile, converged, counts;
- ``P/events/<kind>`` one JSON event each (``mqtt_events.Event``) at the configured QoS (1);
- ``P/cmd/reconcile|pause|resume`` in, ``P/cmd/result`` out (``mqtt_commands``).

With leader election (``instance`` set: replicas), ``P/status`` must say whether an *acting
leader* exists — a standby's will or clean stop must not mark the cluster offline, nor its
detail overwrite the leader's. So this connection reports the replica itself on
``P/instances/<identity>/status`` (its will) and ``…/status/detail``, and while it leads a second
connection (``mqtt_cluster.ClusterStatus``, whose will is on ``P/status``) owns ``P/status`` and
``P/status/detail``. Events and commands stay on this connection; command answers carry
``instance``.

Invariants:
- ``publish_event`` and ``update_status`` never block and never raise: the reconciler never
  waits on the broker. Events wait in a bounded buffer; when it is full the *oldest* is dropped
  and counted (``dropped``, ``on_drop``: ``provisiond_mqtt_events_dropped_total``);
- events go out one at a time in order, each awaited until the broker acknowledges it (PUBACK
  at QoS 1); one whose publish failed stays at the head and is sent again after the reconnect
  (consumers de-duplicate by ``id``);
- aiomqtt does not reconnect by itself: ``run`` reconnects with jittered exponential backoff
  (``reconnect_initial`` doubling up to ``reconnect_max``), for ever, until stop;
- a failure to connect is logged once per distinct cause (a wrong password is one clear line,
  not one per retry); ``connected`` (``on_connected``) tracks ``provisiond_mqtt_connected``;
- with replicas, at stop this connection says goodbye only after the cluster connection has
  handed ``P/status`` over (bounded), so the last ``leadership_changed`` event still goes out;
- a replica's clean stop publishes ``offline`` and then removes both of its retained topics
  (empty retained payloads, ``…/status/detail`` first, ``…/status`` last): identities change at
  every rollout, so nothing of a replica that left cleanly stays on the broker. A crash leaves
  the will's ``offline``, the lost-replica signal. One daemon's ``P/status`` stays ``offline``;
- no secret in any message or log line: every payload is scrubbed of the configured secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import aiomqtt
import structlog

from provisiond import __version__
from provisiond.adapters.mqtt_broker import OFFLINE, ONLINE, broker_client
from provisiond.adapters.mqtt_cluster import ClusterStatus
from provisiond.adapters.mqtt_commands import COMMANDS, CommandHandler, Commands
from provisiond.adapters.mqtt_events import Event
from provisiond.adapters.mqtt_settings import MqttSettings
from provisiond.core.redaction import Redactor

log = structlog.get_logger("provisiond.mqtt")

_STOP_FLUSH_SECONDS = 5.0  # at a clean stop, how long buffered events may take to go out


class MqttPublisher:
    """Publishes status and events to one broker and obeys commands; see the module doc."""

    name = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        *,
        prefix: str,
        commands: Commands | None = None,
        secrets: Iterable[str] = (),
        on_connected: Callable[[bool], None] | None = None,
        on_drop: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        instance: str | None = None,
        may_claim: Callable[[], bool] = lambda: True,
        handover_wait: float = 5.0,
        release_wait: float = 20.0,
    ) -> None:
        """``instance`` (the leader-election identity) turns on the replica topics; then
        ``may_claim`` (the elector's ``may_act``), ``handover_wait`` and ``release_wait`` go to
        the ``ClusterStatus``."""
        if settings.url is None:
            raise ValueError("mqtt.url is not set: MQTT is off")
        if instance is not None and (not instance or any(c in instance for c in "/+#")):
            raise ValueError(f"{instance!r} cannot be an MQTT topic level")
        self.settings = settings
        self.prefix = prefix.rstrip("/")
        self.instance = instance
        self.client_id = settings.identifier(instance)
        self.connected = False
        self.dropped = 0
        self.connects = 0  # successful connections so far
        self._commands: Commands | None = None
        self._handler: CommandHandler | None = None
        self._redact = Redactor([*settings.secret_values(), *secrets])
        self._on_connected = on_connected
        self._on_drop = on_drop
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._tls = settings.tls_context()  # a missing CA/cert file fails at start, not later
        self._buffer: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._detail: dict[str, Any] = {
            "version": __version__,
            "client_id": self.client_id,
            "role": "leader",
            "paused": False,
            "last_reconcile": None,
            "converged": None,
        }
        self._detail_dirty = True
        self._last_failure: str | None = None
        self.cluster: ClusterStatus | None = None
        self._presence = self.topic("status")  # this process's own status topic
        if instance is not None:
            self._presence = self.topic("instances", instance, "status")
            self._detail.update(role="standby", identity=instance)
            self.cluster = ClusterStatus(
                settings,
                prefix=self.prefix,
                identity=instance,
                client_id=f"{self.client_id[:57]}-leader",
                detail=lambda: self._encode(self._detail),
                may_claim=may_claim,
                handover_wait=handover_wait,
                release_wait=release_wait,
                rng=self._rng,
            )
        if commands is not None:
            self.set_commands(commands)

    def set_commands(self, commands: Commands) -> None:
        """Obey commands from now on (call before ``run``: the subscription is made at connect).

        A separate step because of the wiring order: the event feed needs the publisher, the
        reconciler needs the feed, and the commands need the reconciler.
        """
        secret = self.settings.command_secret
        self._commands = commands
        self._handler = CommandHandler(
            commands, secret=secret.get_secret_value() if secret else None
        )
        self.update_status(paused=commands.is_paused())

    # ---------------------------------------------------------------- topics

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # ---------------------------------------------------------------- the non-blocking API

    def publish_event(self, event: Event) -> None:
        """Queue ``event`` for ``P/events/<kind>``; drops (and counts) the oldest when full."""
        body = self._encode(event.payload())
        dropped = 0
        while len(self._buffer) >= self.settings.buffer_size:
            self._buffer.popleft()
            dropped += 1
        self._buffer.append((self.topic("events", str(event.kind)), body))
        self._count_dropped(dropped)
        self._wake.set()

    def update_status(self, **fields: Any) -> None:
        """Merge ``fields`` into ``P/status/detail``; the latest state is sent, coalesced."""
        self._detail.update(fields)
        self._detail_dirty = True
        self._wake.set()
        if self.cluster is not None:
            self.cluster.detail_changed()

    def set_leader(self, leading: bool) -> None:
        """Leader election's transitions (replicas only): the ``role`` in the detail, and the
        cluster connection that owns ``P/status`` while leading."""
        if self.cluster is None:
            raise ValueError("set_leader needs the replica topics (instance)")
        self.update_status(role="leader" if leading else "standby")
        self.cluster.set_leader(leading)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def detail(self) -> dict[str, Any]:
        return dict(self._detail)

    def _count_dropped(self, n: int) -> None:
        if n <= 0:
            return
        self.dropped += n
        if self._on_drop is not None:
            self._on_drop(n)
        log.debug("mqtt_events_dropped", dropped=n, total=self.dropped)

    def _encode(self, obj: dict[str, Any]) -> bytes:
        clean = self._redact(None, "", obj)
        return json.dumps(clean, separators=(",", ":"), sort_keys=True).encode()

    def _set_connected(self, value: bool) -> None:
        if value != self.connected:
            self.connected = value
            if self._on_connected is not None:
                self._on_connected(value)

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        if self.cluster is None:
            await self._run(stop)
            return
        cluster, handed_over = self.cluster, asyncio.Event()

        async def hold() -> None:
            try:
                await cluster.run(stop)
            except Exception:  # MQTT is optional: a bug here never stops the daemon
                log.exception("mqtt_error")
            finally:
                handed_over.set()

        # this connection stops once P/status is handed over: its events go out last
        await asyncio.gather(hold(), self._run(handed_over))

    async def _run(self, stop: asyncio.Event) -> None:
        s = self.settings
        delay = s.reconnect_initial
        while not stop.is_set():
            connects = self.connects
            cause = "the connection ended"
            try:
                await self._connection(stop)
            except aiomqtt.MqttError as exc:
                cause = str(exc) or type(exc).__name__
            except Exception as exc:  # MQTT is optional: a bug here never stops the daemon
                log.exception("mqtt_error")
                cause = f"{type(exc).__name__}: {exc}"
            finally:
                self._set_connected(False)
            if stop.is_set():
                break
            had_connected = self.connects > connects
            if had_connected:
                delay = s.reconnect_initial  # start the backoff over
            # equal jitter: half fixed, half random, so many daemons do not retry in step
            wait = delay / 2 + self._rng.uniform(0, delay / 2)
            self._failed(cause, had_connected=had_connected, retry_in=wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            delay = min(delay * 2, s.reconnect_max)
        log.info("mqtt_stopped", buffered=len(self._buffer), dropped=self.dropped)

    def _failed(self, cause: str, *, had_connected: bool, retry_in: float) -> None:
        """One error line per new cause (a wrong password is logged once, not per retry)."""
        fields: dict[str, object] = {
            "broker": f"{self.settings.host}:{self.settings.port}",
            "error": cause,
            "retry_in": round(retry_in, 3),
        }
        lowered = cause.lower()
        if "not authori" in lowered or "bad user" in lowered:
            fields["hint"] = "check mqtt.username and the password (file or credential)"
        elif "certificate" in lowered:
            fields["hint"] = "check mqtt.ca_file and that the broker's name matches mqtt.url"
        if had_connected:
            log.error("mqtt_disconnected", **fields, buffered=len(self._buffer))
        elif cause != self._last_failure:
            log.error("mqtt_connection_failed", **fields)
        else:
            log.debug("mqtt_connection_failed", **fields)
        self._last_failure = cause

    def _client(self) -> aiomqtt.Client:
        return broker_client(
            self.settings, identifier=self.client_id, tls=self._tls, presence=self._presence
        )

    async def _connection(self, stop: asyncio.Event) -> None:
        async with self._client() as client:
            self._last_failure = None
            self.connects += 1
            await client.publish(self._presence, ONLINE, qos=1, retain=True)
            if self._handler is not None:
                await client.subscribe([(self.topic("cmd", c), 1) for c in COMMANDS])
            self._detail_dirty = True
            self._set_connected(True)
            log.info(
                "mqtt_connected",
                broker=f"{self.settings.host}:{self.settings.port}",
                client_id=self.client_id,
                buffered=len(self._buffer),
            )
            await self._session(client, stop)
            if stop.is_set():
                await self._goodbye(client)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Send and receive until stop or a failure (raised as ``MqttError``)."""
        stopping = asyncio.ensure_future(stop.wait())
        # the receiver runs even without commands: iterating ``messages`` is how aiomqtt
        # reports a lost connection (an idle sender would never notice)
        tasks = [
            asyncio.ensure_future(self._send(client)),
            asyncio.ensure_future(self._receive(client)),
            stopping,
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if t is not stopping and not t.cancelled() and (exc := t.exception()) is not None:
                raise exc

    async def _send(self, client: aiomqtt.Client) -> None:
        qos = self.settings.qos
        while True:
            if self._detail_dirty:
                self._detail_dirty = False
                if self._commands is not None:
                    self._detail["paused"] = self._commands.is_paused()
                try:
                    await client.publish(
                        f"{self._presence}/detail",
                        self._encode(self._detail),
                        qos=qos,
                        retain=True,
                    )
                except BaseException:
                    self._detail_dirty = True
                    raise
            elif self._buffer:
                await self._publish_oldest(client, qos)
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _publish_oldest(self, client: aiomqtt.Client, qos: int) -> None:
        """The oldest buffered event; back to the head when the publish fails (or is cancelled)."""
        topic, body = self._buffer.popleft()
        try:
            await client.publish(topic, body, qos=qos)
        except BaseException:
            self._requeue(topic, body)
            raise

    def _requeue(self, topic: str, body: bytes) -> None:
        """An unsent event goes back to the head, unless newer ones filled the buffer."""
        if len(self._buffer) >= self.settings.buffer_size:
            self._count_dropped(1)  # it is the oldest
            return
        self._buffer.appendleft((topic, body))

    async def _receive(self, client: aiomqtt.Client) -> None:
        base = self.topic("cmd") + "/"
        async for message in client.messages:
            topic = message.topic.value
            if self._handler is None or not topic.startswith(base):
                continue
            payload = message.payload if isinstance(message.payload, bytes) else b""
            answer = self._handler.handle(
                topic.removeprefix(base), payload, retained=message.retain
            )
            if answer.result == "ok":
                self.update_status(paused=answer.paused)
            body = answer.payload()
            if self.instance is not None:
                body["instance"] = self.instance  # replicas answer each: which one this is
            await client.publish(self.topic("cmd", "result"), self._encode(body), qos=1)

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Clean stop: flush what is buffered (bounded), then ``offline`` (retained); a replica
        then removes its retained topics, the detail first, its status last."""
        try:
            await asyncio.wait_for(self._flush(client), _STOP_FLUSH_SECONDS)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            log.warning("mqtt_flush_incomplete", buffered=len(self._buffer), error=str(exc))
        await client.publish(self._presence, OFFLINE, qos=1, retain=True)
        log.info("mqtt_offline_published", topic=self._presence)
        if self.instance is not None:
            # identities are pod names, new at every rollout: a retained topic left behind
            # would be a dead replica for ever. Live subscribers saw the offline; an empty
            # retained payload deletes the retained message (MQTT 3.1.1/5 §3.3.1.3)
            for topic in (f"{self._presence}/detail", self._presence):
                await client.publish(topic, b"", qos=1, retain=True)
            log.info("mqtt_instance_topics_removed", topic=self._presence)

    async def _flush(self, client: aiomqtt.Client) -> None:
        qos = self.settings.qos
        while self._buffer:
            await self._publish_oldest(client, qos)
