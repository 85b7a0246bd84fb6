"""How provisiond connects to the MQTT broker: one ``aiomqtt.Client`` recipe for both of its
connections — the replica's own (``MqttPublisher``) and the leader's cluster status
(``ClusterStatus``). Each has a presence topic whose retained ``offline`` is the connection's
last will, and a clean session (nothing is queued for a client that comes back)."""

from __future__ import annotations

import ssl

import aiomqtt

from provisiond.adapters.mqtt_settings import MqttSettings

ONLINE = b"online"
OFFLINE = b"offline"


def broker_client(
    settings: MqttSettings, *, identifier: str, tls: ssl.SSLContext | None, presence: str
) -> aiomqtt.Client:
    """A client for ``settings``' broker whose will is ``offline`` (retained) on ``presence``."""
    s = settings
    password = s.password.get_secret_value() if s.password is not None else None
    return aiomqtt.Client(
        s.host,
        s.port,
        username=s.username,
        password=password,
        identifier=identifier,
        keepalive=s.keepalive,
        timeout=s.connect_timeout,
        tls_context=tls,
        will=aiomqtt.Will(presence, OFFLINE, qos=1, retain=True),
        clean_session=True,
    )
