"""Which Proxmox privileges a fleet needs, and which of them a token lacks.

``needed(desired, observed)`` lists (path, privilege) pairs with the VMs that need them — the
privileges PVE checks for the calls provisiond makes (ENDPOINTS.md ``perms`` lines):
VM.Audit/VM.Config.*/VM.PowerMgmt on ``/vms/<id>``, VM.Clone on the template, VM.Allocate on
``/vms/<id>`` or on ``/pool/<pool>`` when the VM joins a pool, Datastore.AllocateSpace on
``/storage/<id>``, Mapping.Use on ``/mapping/pci/<id>`` (plus VM.Config.HWType), SDN.Use on the
bridge, VM.Migrate when the fleet may move VMs; Sys.Audit and Sys.Console on ``/`` when a fleet
publishes HA rules to a PVE 9.x cluster (``GET`` / ``POST|PUT|DELETE /cluster/ha/rules``, as the
9.1 schema's ``permissions`` state).

``missing(needs, granted)`` evaluates them against ``GET /access/permissions`` (path → {priv:
propagate}), as PVE resolves ACLs: the most specific path that is the target or an ancestor of
it decides; an ancestor's privilege counts only when it propagates. A VM in a pool also
inherits through ``/pool/<pool>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from provisiond.core.desired import DesiredState, DesiredVM
from provisiond.core.observed import ObservedState


@dataclass(frozen=True, slots=True)
class Need:
    path: str
    privilege: str
    vms: tuple[str, ...]  # who needs it, for the message

    def describe(self, who: str) -> str:
        """``who`` is ``token user@realm!id`` or ``user user@realm``."""
        vms = ", ".join(self.vms[:3]) + (
            f" and {len(self.vms) - 3} more" if len(self.vms) > 3 else ""
        )
        return f"{who} lacks {self.privilege} on {self.path} (needed for {vms})"


def _template_vmid(vm: DesiredVM, observed: ObservedState) -> int | None:
    if vm.template.vmid is not None:
        return vm.template.vmid
    found = [v.vmid for v in observed.vms if v.template and v.name == vm.template.name]
    return found[0] if len(found) == 1 else None


def needed(desired: DesiredState, observed: ObservedState) -> tuple[Need, ...]:
    existing = {v.vmid for v in observed.vms}
    acc: dict[tuple[str, str], list[str]] = {}

    def need(path: str, priv: str, vm: DesiredVM) -> None:
        acc.setdefault((path, priv), []).append(vm.name)

    ha = observed.ha
    for fleet in desired.fleets:
        if fleet.publish_ha_rules and (ha.rules_api or ha.rules_unread):
            for priv in ("Sys.Audit", "Sys.Console"):
                acc.setdefault(("/", priv), []).append(f"HA rules of fleet {fleet.name}")
        moves = fleet.policy.rebalance.enabled or bool(fleet.policy.maintenance)
        for vm in fleet.vms:
            path = f"/vms/{vm.vmid}"
            for priv in ("VM.Audit", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Options"):
                need(path, priv, vm)
            need(path, "VM.PowerMgmt", vm)
            if vm.nics:
                need(path, "VM.Config.Network", vm)
            for nic in vm.nics:
                zone = f"/sdn/zones/localnetwork/{nic.bridge}"
                need(f"{zone}/{nic.vlan}" if nic.vlan else zone, "SDN.Use", vm)
            if vm.cloud_init is not None:
                need(path, "VM.Config.Cloudinit", vm)
            if vm.disks:
                need(path, "VM.Config.Disk", vm)
            if vm.gpus is not None:
                need(path, "VM.Config.HWType", vm)
                need(f"/mapping/pci/{vm.gpus.mapping}", "Mapping.Use", vm)
            if moves or vm.allowed_hosts is None or len(vm.allowed_hosts) > 1:
                need(path, "VM.Migrate", vm)
            if vm.vmid in existing:
                continue
            template = _template_vmid(vm, observed)
            if template is not None:
                need(f"/vms/{template}", "VM.Clone", vm)
            need(f"/pool/{vm.proxmox_pool}" if vm.proxmox_pool else path, "VM.Allocate", vm)
            if vm.storage is not None:
                need(f"/storage/{vm.storage}", "Datastore.AllocateSpace", vm)
    return tuple(Need(p, priv, tuple(vms)) for (p, priv), vms in sorted(acc.items()))


def _ancestors(path: str) -> list[str]:
    """``/vms/100`` → ``["/vms/100", "/vms", "/"]``."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)] + ["/"]


def granted_on(
    path: str, priv: str, granted: Mapping[str, Mapping[str, bool]], pool: str | None = None
) -> bool:
    """Whether ``priv`` holds on ``path`` (a VM in ``pool`` also inherits via ``/pool/…``)."""
    chains = [_ancestors(path)]
    if pool is not None and path.startswith("/vms/"):
        chains.append(_ancestors(f"/pool/{pool}"))
    for chain in chains:
        for candidate in chain:
            if candidate in granted:
                privs = granted[candidate]
                if priv in privs and (candidate == path or privs[priv]):
                    return True
                break  # the most specific ACL path decides
    return False


def missing(
    needs: tuple[Need, ...],
    granted: Mapping[str, Mapping[str, bool]],
    pools: Mapping[int, str] | None = None,
) -> tuple[Need, ...]:
    """The needs ``granted`` does not cover. ``pools`` maps VMIDs to their Proxmox pool."""
    pools = pools or {}
    out = []
    for n in needs:
        pool = None
        if n.path.startswith("/vms/"):
            tail = n.path.removeprefix("/vms/")
            pool = pools.get(int(tail)) if tail.isdigit() else None
        if not granted_on(n.path, n.privilege, granted, pool):
            out.append(n)
    return tuple(out)
