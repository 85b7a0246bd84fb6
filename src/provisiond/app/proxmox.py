"""Wiring, Proxmox part: the connection settings checked, the client, observer and writer built
on them, and the privilege check ``plan`` and ``apply`` make before acting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection, RequestObserver
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ConfigError, ProvisiondError
from provisiond.core.observed import ObservedState
from provisiond.core.privileges import missing, needed
from provisiond.runtime.fence import Fence
from provisiond.settings import Settings


@dataclass(frozen=True, slots=True)
class ProxmoxParts:
    client: ProxmoxClient
    observer: ProxmoxObserver
    actions: ProxmoxActions

    def close(self) -> None:
        self.client.close()


def _credentials(settings: Settings) -> tuple[str | None, str | None, list[str]]:
    """(identity, secret, the settings still needed): a token, else a user and password."""
    px = settings.proxmox
    need = ["proxmox.url"] if px.url is None else []
    if px.token_id is not None:
        secret = px.token_secret.get_secret_value() if px.token_secret else None
        return px.token_id, secret, need + ([] if secret is not None else ["proxmox.token_secret"])
    if px.user is not None:
        secret = px.password.get_secret_value() if px.password else None
        return px.user, secret, need + ([] if secret is not None else ["proxmox.password"])
    return (
        None,
        None,
        [*need, "proxmox.token_id and proxmox.token_secret (or proxmox.user and password)"],
    )


def proxmox_connection(settings: Settings) -> ProxmoxConnection:
    """The connection settings, checked: a clear error names what is missing."""
    px = settings.proxmox
    identity, secret, need = _credentials(settings)
    if need or px.url is None or identity is None or secret is None:
        raise ConfigError(
            "cannot reach Proxmox: set "
            + ", ".join(need)
            + " (settings file, PROVISIOND_PROXMOX__* environment, or a secret file/credential)"
        )
    return ProxmoxConnection(
        url=px.url,
        identity=identity,
        secret=secret,
        verify=str(px.ca_bundle) if px.ca_bundle is not None else px.verify_tls,
        connect_timeout=px.connect_timeout,
        read_timeout=px.read_timeout,
        max_concurrent=px.max_concurrent_requests,
    )


def build_proxmox(
    conn: ProxmoxConnection,
    settings: Settings,
    *,
    on_request: RequestObserver | None = None,
    on_task: Callable[[str, float], None] | None = None,
    fence: Fence | None = None,
) -> ProxmoxParts:
    """The client, observer and writer; ``on_request``/``on_task`` report to the metrics;
    ``fence`` guards every mutating request (leader election)."""
    client = ProxmoxClient(
        conn, on_request=on_request, guard=fence.sending if fence is not None else None
    )
    observer = ProxmoxObserver(
        client,
        cache_ttl=settings.daemon.cache_ttl,
        foreign_cache_ttl=settings.daemon.foreign_cache_ttl,
        self_vmid=settings.daemon.self_vmid,
    )
    actions = ProxmoxActions(
        client,
        invalidate=observer.invalidate,
        invalidate_rules=observer.invalidate_rules,
        on_task=on_task,
    )
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
