"""The cluster status with replicas: ``P/status`` says whether an *acting leader* exists.

With leader election (two replicas by default), the retained ``P/status`` and
``P/status/detail`` belong to the leader alone; each replica reports itself under
``P/instances/<identity>/…`` (``MqttPublisher``). A last will can only be set when a client
connects, and a connection has one will, so the leader opens a *second* MQTT connection — this
one — while it leads: its will is ``offline`` on ``P/status``. A standby never writes there, so
its death or its clean stop says nothing about the cluster.

Invariants:
- the connection is open only while this instance leads (``set_leader``) and the elector says
  it may act (``may_claim``: a leader woken from a freeze past its deadline does not reconnect
  and claim before the elector notices the loss);
- on connect it subscribes, then publishes retained ``online`` and the detail (with its
  ``identity``) — so ``P/status`` is ``online`` within one round trip of acquiring the lease;
- while leading, anything but ``online`` on ``P/status`` is answered with ``online`` again:
  two clients' messages have no order, so a late ``offline`` (a former leader's will after it
  was frozen past its keepalive, a timed-out handover below) would otherwise stick;
- the broker publishes the will (``offline``) when the leader dies or its network drops;
- leaving (lease lost, or released at SIGTERM): if another identity already claims
  ``P/status/detail``, nothing is published (that leader owns the topic now); else, if another
  replica is alive (``P/instances/+/status`` = ``online``), it waits up to ``handover_wait``
  for that one's claim — a released lease is taken at the standby's next retry — so a rolling
  update does not flap ``P/status``; else (or if no claim comes) it publishes ``offline``: no
  leader acts now, and a standby that is alive may still be unable to lead, so ``online`` on
  its behalf could be a lie with no end;
- at stop it waits (up to ``release_wait``) for the elector to release the lease first, so the
  handover above happens instead of an ``offline`` the standby must then correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable

import aiomqtt
import structlog

from provisiond.adapters.mqtt_broker import OFFLINE, ONLINE, broker_client
from provisiond.adapters.mqtt_settings import MqttSettings

log = structlog.get_logger("provisiond.mqtt")


class ClusterStatus:
    """The leader's own connection, owning ``P/status`` and ``P/status/detail``."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        prefix: str,
        identity: str,
        client_id: str,
        detail: Callable[[], bytes],
        may_claim: Callable[[], bool] = lambda: True,
        handover_wait: float = 5.0,
        release_wait: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.prefix = prefix
        self.identity = identity
        self.client_id = client_id
        self._detail = detail
        self._may_claim = may_claim
        self.handover_wait = handover_wait
        self.release_wait = release_wait
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter, not cryptography
        self._tls = settings.tls_context()
        self.leading = False
        self.connected = False
        self._changed = asyncio.Event()  # leadership or the detail changed
        self._detail_dirty = True
        self._claimant: str | None = None  # identity in the latest P/status/detail seen
        self._claims = asyncio.Event()  # a P/status/detail arrived
        self._alive: dict[str, bool] = {}  # P/instances/<identity>/status as last seen
        self._stopped_at: float | None = None  # loop time stop was first seen

    # ---------------------------------------------------------------- what the publisher calls

    def set_leader(self, leading: bool) -> None:
        self.leading = leading
        self._changed.set()

    def detail_changed(self) -> None:
        self._detail_dirty = True
        self._changed.set()

    def others_alive(self) -> list[str]:
        return sorted(i for i, up in self._alive.items() if up and i != self.identity)

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Hold ``P/status`` while leading; return after stop once leadership is handed back."""
        while self._claiming(stop) or not stop.is_set():
            if self._claiming(stop):
                await self._lead(stop)
            else:
                await self._wait_change(stop, None)

    def _claiming(self, stop: asyncio.Event) -> bool:
        """Still the owner: leading, and at stop not yet past ``release_wait``."""
        return self.leading and (not stop.is_set() or self._stop_left(stop) > 0)

    def _stop_left(self, stop: asyncio.Event) -> float:
        """Seconds left of ``release_wait`` since stop was first seen (inf before stop)."""
        if not stop.is_set():
            return float("inf")
        now = asyncio.get_running_loop().time()
        if self._stopped_at is None:
            self._stopped_at = now
        return self._stopped_at + self.release_wait - now

    async def _wait_change(self, stop: asyncio.Event, within: float | None) -> None:
        """Until leadership or the detail changes, stop is set, ``within`` seconds pass or, after
        stop, ``release_wait`` runs out."""
        self._changed.clear()
        left = self._stop_left(stop)
        if left != float("inf"):
            within = max(0.0, left if within is None else min(within, left))
        waits = [asyncio.ensure_future(self._changed.wait())]
        if not stop.is_set():
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _lead(self, stop: asyncio.Event) -> None:
        s = self.settings
        delay = s.reconnect_initial
        while self._claiming(stop):
            if self._may_claim():
                try:
                    await self._connection(stop)
                    return
                except aiomqtt.MqttError as exc:
                    log.warning("mqtt_cluster_status_disconnected", error=str(exc) or "lost")
                finally:
                    self.connected = False
            await self._wait_change(stop, delay / 2 + self._rng.uniform(0, delay / 2))
            delay = min(delay * 2, s.reconnect_max)

    def _client(self) -> aiomqtt.Client:
        return broker_client(
            self.settings, identifier=self.client_id, tls=self._tls, presence=self._topic("status")
        )

    def _topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    async def _connection(self, stop: asyncio.Event) -> None:
        async with self._client() as client:
            self._claimant = None
            self._alive.clear()
            await client.subscribe(
                [
                    (self._topic("status"), 1),
                    (self._topic("status", "detail"), 1),
                    (self._topic("instances", "+", "status"), 1),
                ]
            )
            await client.publish(self._topic("status"), ONLINE, qos=1, retain=True)
            self._detail_dirty = True
            self.connected = True
            log.info("mqtt_cluster_status_online", identity=self.identity)
            receiver = asyncio.ensure_future(self._receive(client))
            holder = asyncio.ensure_future(self._hold(client, stop))
            try:
                done, _ = await asyncio.wait(
                    [receiver, holder], return_when=asyncio.FIRST_COMPLETED
                )
                if holder not in done:  # the receiver ended: the connection is gone
                    receiver.result()
                    raise aiomqtt.MqttError("the connection ended")
                holder.result()
                await self._leave(client, receiver)
            finally:
                for t in (receiver, holder):
                    t.cancel()
                await asyncio.gather(receiver, holder, return_exceptions=True)

    async def _hold(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Send the detail whenever it changes, until leadership ends (or stop + release_wait)."""
        while self._claiming(stop):
            if self._detail_dirty:
                self._detail_dirty = False
                try:
                    await self._publish_detail(client)
                except BaseException:
                    self._detail_dirty = True
                    raise
            else:
                await self._wait_change(stop, None)

    async def _publish_detail(self, client: aiomqtt.Client) -> None:
        await client.publish(
            self._topic("status", "detail"), self._detail(), qos=self.settings.qos, retain=True
        )

    async def _receive(self, client: aiomqtt.Client) -> None:
        status, detail = self._topic("status"), self._topic("status", "detail")
        instances = self._topic("instances") + "/"
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.retain and topic in (status, detail):
                continue  # from before our claim, which replaces it: only live ones matter
            if topic == status:
                if payload != ONLINE and self.leading:
                    log.info(
                        "mqtt_cluster_status_reasserted", seen=payload.decode(errors="replace")
                    )
                    await client.publish(status, ONLINE, qos=1, retain=True)
            elif topic == detail:
                self._claimant = _identity(payload)
                self._claims.set()
            elif topic.startswith(instances) and topic.endswith("/status"):
                who = topic.removeprefix(instances).removesuffix("/status")
                self._alive[who] = payload == ONLINE

    async def _leave(self, client: aiomqtt.Client, receiver: asyncio.Future[None]) -> None:
        """Hand ``P/status`` over, or say ``offline`` (see the module doc)."""
        others = self.others_alive()
        if self._claimant in (None, self.identity) and others:
            log.info("mqtt_cluster_status_handover", waiting_for=others, seconds=self.handover_wait)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.handover_wait):
                    while self._claimant in (None, self.identity) and not receiver.done():
                        self._claims.clear()
                        await self._claims.wait()
        if self._claimant in (None, self.identity):
            await client.publish(self._topic("status"), OFFLINE, qos=1, retain=True)
            log.info("mqtt_cluster_status_offline", identity=self.identity)
        else:
            log.info("mqtt_cluster_status_handed_over", to=self._claimant)


def _identity(payload: bytes) -> str | None:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    who = body.get("identity") if isinstance(body, dict) else None
    return who if isinstance(who, str) else None
