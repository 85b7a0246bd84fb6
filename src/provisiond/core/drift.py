"""Config drift: the Proxmox config keys to write so a VM matches its desired values.

Only the keys the spec owns are compared or written: ``cores``, ``memory``, ``hostpciN``
(mappings), the declared ``netN`` and ``ipconfigN``, ``nameserver``, ``searchdomain``,
``ciuser``, ``sshkeys``, ``tags``, and new disks (``<slot>: <storage>:<GiB>``); existing disks only
grow (``grow_disks``). Raw ``hostpciN: host=…`` entries are never written or deleted.

Invariant: ``config_drift(d, c)`` is empty exactly when ``c`` already satisfies ``d``, so writing
its result and re-reading gives no drift (a fixpoint, checked by property tests).
"""

from __future__ import annotations

from dataclasses import dataclass

from provisiond.core.desired import OWNER_TAG, DesiredVM, IpConfig
from provisiond.core.observed import Nic, VMConfig
from provisiond.core.pveconfig import render_ipconfig, render_new_disk, render_nic


def desired_tags(d: DesiredVM) -> tuple[str, ...]:
    return tuple(sorted({OWNER_TAG, f"pd-{d.fleet}", *(t.lower() for t in d.tags)}))


@dataclass(frozen=True, slots=True)
class Drift:
    values: dict[str, str]
    delete: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.values or self.delete)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.values) | frozenset(self.delete)


def _nic(want: Nic, have: Nic | None) -> str | None:
    mac = want.mac or (have.mac if have is not None else None)
    firewall = want.firewall
    if firewall is None and have is not None:
        firewall = have.firewall
    target = Nic(want.index, want.model, mac, want.bridge, want.tag, firewall)
    if have is not None and (
        have.model,
        (have.mac or "").upper(),
        have.bridge,
        have.tag,
        have.firewall,
    ) == (target.model, (mac or "").upper(), target.bridge, target.tag, target.firewall):
        return None
    return render_nic(target)


def config_drift(d: DesiredVM, c: VMConfig, *, default_storage: str | None) -> Drift:
    values: dict[str, str] = {}
    delete: list[str] = []
    if c.cores != d.cores:
        values["cores"] = str(d.cores)
    if c.memory_mib != d.memory_mib:
        values["memory"] = str(d.memory_mib)

    want_pci = dict.fromkeys(range(d.gpus.count), d.gpus.mapping) if d.gpus else {}
    for i, mapping in want_pci.items():
        have = c.hostpci.get(i)
        if have is None or have.mapping != mapping:
            values[f"hostpci{i}"] = f"mapping={mapping}"
    for i, have in sorted(c.hostpci.items()):
        if i not in want_pci and have.mapping is not None:
            delete.append(f"hostpci{i}")

    for spec in d.nics:
        want = Nic(spec.index, spec.model, spec.mac, spec.bridge, spec.vlan, spec.firewall)
        rendered = _nic(want, c.nets.get(spec.index))
        if rendered is not None:
            values[f"net{spec.index}"] = rendered

    ci = d.cloud_init
    if ci is not None:
        for ipc in ci.ipconfigs:
            have_ip = c.ipconfigs.get(ipc.index)
            if have_ip != IpConfig(ipc.index, ipc.ip, ipc.gateway):
                values[f"ipconfig{ipc.index}"] = render_ipconfig(ipc)
        if ci.nameservers and (c.nameserver or "").split() != list(ci.nameservers):
            values["nameserver"] = " ".join(ci.nameservers)
        if ci.search_domain is not None and c.searchdomain != ci.search_domain:
            values["searchdomain"] = ci.search_domain
        if ci.user is not None and c.ciuser != ci.user:
            values["ciuser"] = ci.user
        keys = "\n".join(ci.ssh_keys)
        if ci.ssh_keys and (c.sshkeys or "").strip() != keys:
            values["sshkeys"] = keys

    tags = desired_tags(d)
    if c.tags != tags:
        values["tags"] = ";".join(tags)

    for disk in d.disks:
        storage = disk.storage or default_storage
        if disk.slot not in c.disks and storage is not None:
            values[disk.slot] = render_new_disk(storage, disk.size_bytes)
    return Drift(values, tuple(delete))


def grow_disks(d: DesiredVM, c: VMConfig) -> tuple[tuple[str, int, int], ...]:
    """(slot, desired bytes, current bytes) for every existing disk smaller than desired."""
    return tuple(
        (disk.slot, disk.size_bytes, c.disks[disk.slot].size_bytes)
        for disk in d.disks
        if disk.slot in c.disks and c.disks[disk.slot].size_bytes < disk.size_bytes
    )
