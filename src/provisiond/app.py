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
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ConfigError, ProvisiondError
from provisiond.core.observed import ObservedState
from provisiond.core.privileges import missing, needed
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
    identity: str | None
    secret: str | None
    if px.token_id is not None:
        identity = px.token_id
        secret = px.token_secret.get_secret_value() if px.token_secret else None
        missing = [
            n for n, v in (("proxmox.url", px.url), ("proxmox.token_secret", secret)) if v is None
        ]
    elif px.user is not None:
        identity = px.user
        secret = px.password.get_secret_value() if px.password else None
        missing = [
            n for n, v in (("proxmox.url", px.url), ("proxmox.password", secret)) if v is None
        ]
    else:
        identity = secret = None
        missing = ["proxmox.url"] if px.url is None else []
        missing += ["proxmox.token_id and proxmox.token_secret (or proxmox.user and password)"]
    if missing or px.url is None or identity is None or secret is None:
        raise ConfigError(
            "cannot reach Proxmox: set "
            + ", ".join(missing)
            + " (settings file, PROVISIOND_PROXMOX__* environment, or a secret file/credential)"
        )
    verify: bool | str = str(px.ca_bundle) if px.ca_bundle is not None else px.verify_tls
    return ProxmoxConnection(
        url=px.url,
        identity=identity,
        secret=secret,
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


async def privilege_problems(
    parts: ProxmoxParts, desired: DesiredState, observed: ObservedState
) -> tuple[list[str], list[str]]:
    """(lacking, unknown): each privilege the fleet needs but the token lacks, as a sentence,
    and why the check could not be made (the privileges were unreadable).

    ``plan`` shows both as warnings; ``apply`` refuses on ``lacking`` and warns on ``unknown``
    (the API still enforces every privilege: an unreadable list is no reason to stop).
    """
    try:
        granted = await parts.observer.permissions()
    except ProvisiondError as exc:
        return [], [f"could not read the token's privileges (GET /access/permissions): {exc}"]
    pools = {vm.vmid: vm.proxmox_pool for vm in desired.all_vms() if vm.proxmox_pool}
    lacking = missing(needed(desired, observed), granted, pools)
    who = parts.client.identity
    who = f"token {who}" if "!" in who else f"user {who}"
    return [n.describe(who) for n in lacking], []


def build_metrics() -> Metrics:
    return Metrics(CollectorRegistry(auto_describe=True))
