"""The checks across the parts of a topology document (``Topology`` runs them when validated).

Names that must be unique are (hosts, storages, mappings, pools, VMIDs and guest names, users,
tokens of a user, PCI addresses of a host, disks and NICs of a guest, roles); every reference
resolves (hosts, storages reachable from the guest's host, pools, PCI devices and mappings,
roles, users, tokens); roles name only PVE privileges and never redefine a built-in one; running
VMs never need more devices of a mapping on a host than it has there. Each problem is one
sentence naming the part; ``problems`` returns all of them, in document order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from provisiond.core.pve_privileges import ACL_PATH_RE, BUILTIN_ROLES, PRIVILEGES
from provisiond.core.topology.models import VM, VMStatus

if TYPE_CHECKING:
    from provisiond.core.topology.document import Topology

_T = TypeVar("_T")


def _duplicates(values: Iterable[_T]) -> list[_T]:
    return [v for v, n in Counter(values).items() if n > 1]


def problems(doc: Topology) -> list[str]:
    """Every reference problem of ``doc`` (empty when it is consistent)."""
    errors: list[str] = []
    spec = doc.spec
    for what, names in (
        ("host", [h.name for h in spec.hosts]),
        ("storage", [s.name for s in spec.storages]),
        ("PCI mapping", [m.id for m in spec.pci_mappings]),
        ("pool", [p.name for p in spec.pools]),
        ("VMID", [g.vmid for g in doc.guests()]),
        ("guest name", [g.name for g in doc.guests()]),
        ("user", [u.id for u in spec.users]),
    ):
        errors += [f"duplicate {what} {d!r}" for d in _duplicates(names)]
    for user in spec.users:
        errors += [
            f"user {user.id!r}: duplicate token {d!r}"
            for d in _duplicates(t.id for t in user.tokens)
        ]
    host_names = {h.name for h in spec.hosts}
    for host in spec.hosts:
        errors += [
            f"host {host.name!r}: duplicate PCI address {d!r}"
            for d in _duplicates(d.address for d in host.pci_devices)
        ]
    for st in spec.storages:
        for h in (*st.hosts, *st.size_per_host):
            if h not in host_names:
                errors.append(f"storage {st.name!r}: unknown host {h!r}")
    errors += _mapping_errors(doc)
    errors += _guest_errors(doc, host_names)
    errors += _access_errors(doc)
    errors += _ha_errors(doc, host_names)
    return errors


def _ha_errors(doc: Topology, host_names: set[str]) -> list[str]:
    """HA rules and the 9.x ``crs`` keys need ``pveVersion: "9.1"``; rules name hosts and
    HA-managed VMs; a VM is in at most one node-affinity rule (PVE drops the later ones)."""
    spec = doc.spec
    errors: list[str] = []
    if spec.pve_version == "8.4":
        if spec.ha_rules:
            errors.append("haRules: HA rules exist from PVE 9 on (set pveVersion: '9.1')")
        if spec.crs.ha == "dynamic" or spec.crs.ha_auto_rebalance:
            errors.append("crs: 'dynamic' and auto-rebalance exist from PVE 9 on")
    errors += [f"duplicate HA rule {d!r}" for d in _duplicates(r.id for r in spec.ha_rules)]
    managed = {vm.vmid for vm in spec.vms if vm.hastate is not None}
    seen: set[int] = set()
    for rule in spec.ha_rules:
        where = f"HA rule {rule.id!r}"
        errors += [
            f"{where}: VM {v} is not HA-managed (no hastate)"
            for v in rule.resources
            if v not in managed
        ]
        errors += [
            f"{where}: unknown host {n!r}" for n in rule.node_priorities() if n not in host_names
        ]
        if rule.nodes:
            twice = sorted(seen & set(rule.resources))
            errors += [f"{where}: VM {v} is already in another node affinity rule" for v in twice]
            seen |= set(rule.resources)
    return errors


def _access_errors(doc: Topology) -> list[str]:
    spec = doc.spec
    errors = [f"duplicate role {d!r}" for d in _duplicates(r.id for r in spec.roles)]
    for role in spec.roles:
        if role.id in BUILTIN_ROLES:
            errors.append(f"role {role.id!r}: a built-in role cannot be redefined")
        errors += [
            f"role {role.id!r}: unknown privilege {p!r}"
            for p in role.privileges
            if p not in PRIVILEGES
        ]
    roles = {*BUILTIN_ROLES, *(r.id for r in spec.roles)}
    users = {u.id for u in spec.users} | {"root@pam"}
    tokens = {f"{u.id}!{t.id}" for u in spec.users for t in u.tokens}
    for acl in spec.acls:
        where = f"ACL {acl.path!r}"
        if not ACL_PATH_RE.match(acl.path):
            errors.append(f"{where}: invalid ACL path")
        if not acl.users and not acl.tokens:
            errors.append(f"{where}: names no user or token")
        errors += [f"{where}: unknown role {r!r}" for r in acl.roles if r not in roles]
        errors += [f"{where}: unknown user {u!r}" for u in acl.users if u not in users]
        errors += [f"{where}: unknown token {t!r}" for t in acl.tokens if t not in tokens]
    return errors


def _mapping_errors(doc: Topology) -> list[str]:
    errors: list[str] = []
    for m in doc.spec.pci_mappings:
        errors += [
            f"PCI mapping {m.id!r}: device {h}/{p} listed twice"
            for h, p in _duplicates((e.host, e.path) for e in m.map)
        ]
        for e in m.map:
            host = doc.host(e.host)
            if host is None:
                errors.append(f"PCI mapping {m.id!r}: unknown host {e.host!r}")
                continue
            dev = host.device(e.path)
            if dev is None:
                errors.append(f"PCI mapping {m.id!r}: host {e.host!r} has no device {e.path}")
            elif e.id is not None and e.id != dev.id:
                errors.append(f"PCI mapping {m.id!r}: {e.host}/{e.path} is {dev.id}, not {e.id}")
    return errors


def _guest_errors(doc: Topology, host_names: set[str]) -> list[str]:
    errors: list[str] = []
    pools = {p.name for p in doc.spec.pools}
    for g in doc.guests():
        where = f"VM {g.vmid} ({g.name})"
        if g.host not in host_names:
            errors.append(f"{where}: unknown host {g.host!r}")
            continue
        if g.pool is not None and g.pool not in pools:
            errors.append(f"{where}: unknown pool {g.pool!r}")
        reachable = {s.name for s in doc.storages_of(g.host)}
        if g.storage is not None and g.storage not in reachable:
            errors.append(f"{where}: storage {g.storage!r} is not available on {g.host}")
        errors += [f"{where}: duplicate disk {d!r}" for d in _duplicates(d.slot for d in g.disks)]
        errors += [f"{where}: duplicate NIC {d!r}" for d in _duplicates(n.slot for n in g.nets)]
        for disk in g.disks:
            sid = g.disk_storage(disk)
            if sid is None:
                errors.append(f"{where}: disk {disk.slot} names no storage")
            elif sid not in reachable:
                errors.append(f"{where}: disk {disk.slot}: storage {sid!r} not on {g.host}")
        if isinstance(g, VM):
            errors += _hostpci_errors(doc, g, where)
    errors += _device_demand_errors(doc)
    return errors


def _hostpci_errors(doc: Topology, vm: VM, where: str) -> list[str]:
    errors = [f"{where}: duplicate {d!r}" for d in _duplicates(p.slot for p in vm.hostpci)]
    host = doc.host(vm.host)
    assert host is not None  # checked by the caller
    for pci in vm.hostpci:
        if pci.mapping is not None and doc.mapping(pci.mapping) is None:
            errors.append(f"{where}: {pci.slot}: unknown PCI mapping {pci.mapping!r}")
        if pci.host is not None and host.device(pci.host) is None:
            errors.append(f"{where}: {pci.slot}: host {vm.host!r} has no device {pci.host}")
    return errors


def _device_demand_errors(doc: Topology) -> list[str]:
    demand: Counter[tuple[str, str]] = Counter(
        (vm.host, pci.mapping)
        for vm in doc.spec.vms
        if vm.status is not VMStatus.STOPPED
        for pci in vm.hostpci
        if pci.mapping is not None
    )
    errors = []
    for (host, mapping_id), wanted in sorted(demand.items()):
        mapping = doc.mapping(mapping_id)
        have = len(mapping.entries_on(host)) if mapping is not None else 0
        if mapping is not None and wanted > have:
            errors.append(
                f"running VMs on {host} use {wanted} devices of mapping {mapping_id!r}, "
                f"which has {have} there"
            )
    return errors
