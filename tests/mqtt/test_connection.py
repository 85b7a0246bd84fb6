"""Reconnects, buffering, TLS and authentication against a real Mosquitto."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mosquitto_broker import USERS, Broker
from mqtt_support import PREFIX, running, settings, until, watching
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_events import Event, EventKind


def event(n: int) -> Event:
    return Event(kind=EventKind.ACTION_STARTED, time=1.0e9 + n, reason=f"step {n}")


def numbers(events: list[dict[str, object]]) -> list[int]:
    return [int(str(e["reason"]).split()[1]) for e in events]


async def test_broker_restart_mid_run_delivers_buffered_events_after_reconnect(
    broker: Broker,
) -> None:
    connected: list[bool] = []
    pub = MqttPublisher(settings(broker), prefix=PREFIX, on_connected=connected.append)
    async with running(pub):
        await until(lambda: pub.connected)
        async with watching(broker) as w:
            for n in range(3):
                pub.publish_event(event(n))
            await w.wait_for(lambda w: len(w.events()) == 3)
        broker.stop()
        await until(lambda: not pub.connected)
        for n in range(3, 8):  # the reconciler goes on: nothing blocks, nothing raises
            pub.publish_event(event(n))
        assert pub.buffered == 5
        broker.start()
        async with watching(broker, f"{PREFIX}/events/#") as w:
            await w.wait_for(lambda w: len(w.events()) >= 5, within=15)
            assert numbers(w.events()) == [3, 4, 5, 6, 7]  # in order, none lost
    assert pub.buffered == 0
    assert pub.dropped == 0
    assert connected == [True, False, True, False]
    assert pub.connects == 2


async def test_broker_absent_at_start_retries_and_reports_disconnected(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")  # configured, not started
    pub = MqttPublisher(settings(broker), prefix=PREFIX, rng=random.Random(1))
    with capture_logs() as logs:
        async with running(pub):
            for n in range(3):
                pub.publish_event(event(n))
            await asyncio.sleep(1.0)  # several attempts at 0.05 … 0.3 s
            assert not pub.connected
            assert pub.connects == 0
            failures = [e for e in logs if e["event"] == "mqtt_connection_failed"]
            assert len(failures) >= 3  # it keeps trying
            assert [e["log_level"] for e in failures].count("error") == 1  # one clear line
            broker.start()
            try:
                async with watching(broker, f"{PREFIX}/events/#") as w:
                    await w.wait_for(lambda w: len(w.events()) == 3, within=15)
                    assert numbers(w.events()) == [0, 1, 2]
                assert pub.connected
            finally:
                broker.stop()


async def test_buffer_overflow_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    drops: list[int] = []
    pub = MqttPublisher(settings(broker, buffer_size=5), prefix=PREFIX, on_drop=drops.append)
    for n in range(12):
        pub.publish_event(event(n))
    assert pub.buffered == 5
    assert pub.dropped == 7
    assert sum(drops) == 7
    broker.start()
    try:
        async with watching(broker, f"{PREFIX}/events/#") as w, running(pub):
            await w.wait_for(lambda w: len(w.events()) == 5)
            assert numbers(w.events()) == [7, 8, 9, 10, 11]  # the newest survive
    finally:
        broker.stop()


async def test_tls_with_the_ca(broker: Broker) -> None:
    assert broker.certs is not None
    s = settings(broker, url=broker.tls_url, ca_file=broker.certs.ca)
    pub = MqttPublisher(s, prefix=PREFIX)
    async with watching(broker) as w, running(pub):
        await w.wait_for(lambda w: any(m.payload == b"online" for m in w.on(f"{PREFIX}/status")))
        pub.publish_event(event(1))
        await w.wait_for(lambda w: numbers(w.events()) == [1])
    assert "New connection from 127.0.0.1:" in broker.log_text()


# paho-mqtt 2.2 does not close the socket of a failed TLS handshake (``_ssl_wrap_socket``):
# the garbage collector does, with a ResourceWarning that is paho's, not ours.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_without_the_ca_does_not_connect(broker: Broker) -> None:
    pub = MqttPublisher(settings(broker, url=broker.tls_url), prefix=PREFIX)  # system CAs
    with capture_logs() as logs:
        async with running(pub):
            await until(lambda: any(e["event"] == "mqtt_connection_failed" for e in logs))
            assert not pub.connected
    err = next(e for e in logs if e["event"] == "mqtt_connection_failed")
    assert "CERTIFICATE_VERIFY_FAILED" in err["error"]


async def test_wrong_password_is_one_clear_log_line_and_retries(broker: Broker) -> None:
    wrong = "not-the-password-Xy7"
    pub = MqttPublisher(settings(broker, password=wrong), prefix=PREFIX)
    with capture_logs() as logs:
        async with running(pub):
            await asyncio.sleep(1.0)
            assert not pub.connected
    failures = [e for e in logs if e["event"] == "mqtt_connection_failed"]
    assert len(failures) >= 3  # retried on backoff
    loud = [e for e in failures if e["log_level"] == "error"]
    assert len(loud) == 1
    assert loud[0]["error"] == "[code:135] Not authorized"  # Mosquitto 2's answer
    assert loud[0]["hint"] == "check mqtt.username and the password (file or credential)"
    assert loud[0]["broker"] == f"127.0.0.1:{broker.port}"
    # the password is in no log line
    assert not [e for e in logs if wrong in repr(e) or USERS["provisiond"] in repr(e)]


async def test_backoff_doubles_with_equal_jitter_up_to_the_cap(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")  # never started: every attempt fails
    s = settings(broker, reconnect_initial=0.02, reconnect_max=0.1)
    pub = MqttPublisher(s, prefix=PREFIX, rng=random.Random(7))
    with capture_logs() as logs:
        async with running(pub):
            await until(
                lambda: len([e for e in logs if e["event"] == "mqtt_connection_failed"]) >= 6
            )
    waits = [e["retry_in"] for e in logs if e["event"] == "mqtt_connection_failed"][:6]
    rng = random.Random(7)
    expected, d = [], 0.02
    for _ in range(6):
        expected.append(round(d / 2 + rng.uniform(0, d / 2), 3))
        d = min(d * 2, 0.1)
    assert waits == expected
    assert max(waits) <= 0.1
    assert waits[-1] >= 0.05  # capped at 0.1, at least half of it


async def test_known_secrets_are_scrubbed_from_published_events(broker: Broker) -> None:
    token = "pve-token-secret-4f1c"  # e.g. the Proxmox token, handed in by app
    pub = MqttPublisher(settings(broker), prefix=PREFIX, secrets=[token])
    async with watching(broker) as w, running(pub):
        pub.publish_event(
            Event(
                kind=EventKind.ACTION_FAILED,
                time=1.0e9,
                reason=f"401 for token {token}",
                details={"detail": f"auth {USERS['provisiond']} failed", "password": "x"},
            )
        )
        await w.wait_for(lambda w: len(w.events()) == 1)
    (e,) = w.events()
    assert e["reason"] == "401 for token **********"
    assert e["details"] == {"detail": "auth ********** failed", "password": "**********"}
