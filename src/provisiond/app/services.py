"""Wiring, the services beside the loop: the MQTT publisher and its leadership hook, and the
systemd notifier. (The metrics endpoint is one constructor call, made in ``app.daemon``.)"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

from provisiond.adapters.metrics import Metrics
from provisiond.adapters.mqtt import MqttPublisher
from provisiond.adapters.mqtt_events import EventFeed
from provisiond.adapters.sdnotify import SystemdNotifier
from provisiond.app.election import Election
from provisiond.core.errors import ConfigError
from provisiond.runtime.leader import JITTER
from provisiond.settings import Settings


def mqtt_publisher(
    settings: Settings, metrics: Metrics, election: Election | None
) -> MqttPublisher:
    """The MQTT publisher; its connection state and dropped events feed the metrics. With leader
    election it reports the replica on ``P/instances/<identity>/…`` and owns ``P/status`` while
    it leads (docs/mqtt.md): the handover waits for the standby's next retry, and a stop waits
    for the elector's drain and release first."""
    replica: dict[str, Any] = {}
    if election is not None:
        le = settings.leader_election
        replica = {
            "instance": election.elector.config.identity,
            "may_claim": election.elector.may_act,
            "handover_wait": JITTER * le.retry_period + 2.0,
            "release_wait": le.release_timeout + 2 * le.retry_period + 2.0,
        }
    try:
        return MqttPublisher(
            settings.mqtt,
            prefix=settings.mqtt.prefix(settings.cluster_name()),
            secrets=settings.secret_values(),
            on_connected=metrics.set_mqtt_connected,
            on_drop=metrics.mqtt_event_dropped,
            **replica,
        )
    except (OSError, ssl.SSLError) as exc:  # the CA, certificate or key file
        raise ConfigError(f"mqtt: cannot load the TLS files: {exc}") from None


def leadership_events(
    publisher: MqttPublisher, feed: EventFeed, *, leading: bool
) -> Callable[[bool], None]:
    """The elector's hook for MQTT: the publisher's role (who owns ``P/status``), and a
    ``leadership_changed`` event on each real change — the elector also reports "standby" when
    it starts, which is no change."""
    last = [leading]

    def changed(leader: bool) -> None:
        publisher.set_leader(leader)
        if leader != last[0]:
            last[0] = leader
            feed.leadership_changed(leader=leader)

    return changed


def systemd_notifier(environ: Mapping[str, str]) -> SystemdNotifier | None:
    """The sd_notify speaker when run by systemd (``$NOTIFY_SOCKET``): ``run`` passes it to
    ``build_daemon`` as the cycle listener (READY, STATUS) and to ``manager``."""
    return SystemdNotifier.from_environ(environ)
