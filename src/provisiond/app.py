"""Wiring: builds the daemon's pieces from settings. The only module that knows the adapters.

No singletons: each builder returns fresh objects; the metrics registry is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from provisiond.adapters.metrics import Metrics
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.core.errors import ConfigError
from provisiond.settings import Settings


@dataclass(frozen=True, slots=True)
class ProxmoxParts:
    client: ProxmoxClient
    observer: ProxmoxObserver
    actions: ProxmoxActions

    def close(self) -> None:
        self.client.close()


def proxmox_connection(settings: Settings) -> ProxmoxConnection:
    """The connection settings, checked: a clear error names what is missing."""
    px = settings.proxmox
    if px.url is None or px.token_id is None or px.token_secret is None:
        missing = [
            name
            for name, value in (
                ("proxmox.url", px.url),
                ("proxmox.token_id", px.token_id),
                ("proxmox.token_secret", px.token_secret),
            )
            if value is None
        ]
        raise ConfigError(
            "cannot reach Proxmox: set "
            + ", ".join(missing)
            + " (settings file, PROVISIOND_PROXMOX__* environment, or a secret file/credential)"
        )
    verify: bool | str = str(px.ca_bundle) if px.ca_bundle is not None else px.verify_tls
    return ProxmoxConnection(
        url=px.url,
        token_id=px.token_id,
        token_secret=px.token_secret.get_secret_value(),
        verify=verify,
        connect_timeout=px.connect_timeout,
        read_timeout=px.read_timeout,
        max_concurrent=px.max_concurrent_requests,
    )


def build_proxmox(
    conn: ProxmoxConnection, settings: Settings, metrics: Metrics | None = None
) -> ProxmoxParts:
    client = ProxmoxClient(
        conn, on_request=metrics.observe_proxmox_request if metrics is not None else None
    )
    observer = ProxmoxObserver(
        client, cache_ttl=settings.daemon.cache_ttl, self_vmid=settings.daemon.self_vmid
    )
    actions = ProxmoxActions(client, invalidate=observer.invalidate)
    return ProxmoxParts(client=client, observer=observer, actions=actions)


def build_metrics() -> Metrics:
    return Metrics(CollectorRegistry(auto_describe=True))
