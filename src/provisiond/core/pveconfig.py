"""Proxmox VM config property strings: parse the wire form into ``VMConfig``, render values.

One place knows the formats (``net0: virtio=00:16:3E:…,bridge=vmbr0,tag=633``,
``hostpci0: mapping=a100-40g``, ``scsi0: local-nvme:vm-100-disk-0,size=100G``…), so the observer
parsing what Proxmox returns and the planner rendering what to write cannot drift apart.

Invariants: pure string work; unknown sub-keys are ignored, never an error (Proxmox adds keys
between releases); ``sshkeys`` arrive percent-encoded on the wire and are decoded here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from provisiond.core.desired import IpConfig
from provisiond.core.observed import Disk, HostPci, Nic, VMConfig

NIC_MODELS = frozenset({"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "ne2k_pci", "pcnet"})
_DISK_KEY = re.compile(r"^(?:scsi|virtio|sata|ide)\d+$")
_INDEXED = re.compile(r"^(net|hostpci|ipconfig)(\d+)$")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
GIB = 1 << 30


def split_props(value: str) -> tuple[str | None, dict[str, str]]:
    """``"a,b=1,c=2"`` -> ``("a", {"b": "1", "c": "2"})``: the bare default key, then the rest."""
    bare: str | None = None
    props: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            bare = key
        else:
            props[key] = val
    return bare, props


def parse_size(text: str) -> int:
    """``"100G"`` -> bytes; a bare number is bytes."""
    unit = text[-1:].upper()
    if unit in _UNITS:
        return int(float(text[:-1]) * _UNITS[unit])
    return int(text)


def parse_tags(text: str) -> tuple[str, ...]:
    return tuple(sorted({t.lower() for t in re.split(r"[;,\s]+", text) if t}))


def percent_decode(text: str) -> str:
    """Decode ``%XX`` escapes (Proxmox stores ``sshkeys`` URL-encoded)."""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 1 : i + 3]):
            out += bytes.fromhex(text[i + 1 : i + 3])
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return out.decode()


def parse_nic(index: int, value: str) -> Nic:
    bare, props = split_props(value)
    model, mac = "virtio", None
    if bare is not None:
        model = bare
    for key in sorted(props):
        if key in NIC_MODELS:
            model, mac = key, props[key].upper()
    tag = props.get("tag")
    fw = props.get("firewall")
    return Nic(
        index=index,
        model=model,
        mac=mac,
        bridge=props.get("bridge"),
        tag=int(tag) if tag is not None else None,
        firewall=(fw == "1") if fw is not None else None,
    )


def render_nic(nic: Nic) -> str:
    parts = [f"{nic.model}={nic.mac}" if nic.mac else nic.model]
    if nic.bridge is not None:
        parts.append(f"bridge={nic.bridge}")
    if nic.tag is not None:
        parts.append(f"tag={nic.tag}")
    if nic.firewall is not None:
        parts.append(f"firewall={int(nic.firewall)}")
    return ",".join(parts)


def parse_hostpci(index: int, value: str) -> HostPci:
    bare, props = split_props(value)
    if "mapping" in props:
        return HostPci(index=index, mapping=props["mapping"])
    return HostPci(index=index, raw=props.get("host", bare))


def parse_ipconfig(index: int, value: str) -> IpConfig:
    _, props = split_props(value)
    return IpConfig(index=index, ip=props.get("ip", ""), gateway=props.get("gw"))


def render_ipconfig(ipc: IpConfig) -> str:
    return f"ip={ipc.ip}" + (f",gw={ipc.gateway}" if ipc.gateway else "")


def parse_disk(slot: str, value: str) -> Disk | None:
    """A disk, or ``None`` for a CD-ROM / empty drive."""
    bare, props = split_props(value)
    if props.get("media") == "cdrom" or bare is None or bare == "none":
        return None
    storage = bare.partition(":")[0]
    return Disk(slot=slot, storage=storage, size_bytes=parse_size(props.get("size", "0")))


def render_new_disk(storage: str, size_bytes: int) -> str:
    """The config value that allocates a new volume: ``<storage>:<GiB>``."""
    return f"{storage}:{-(-size_bytes // GIB)}"


def parse_config(raw: Mapping[str, str]) -> VMConfig:
    """A ``GET …/config`` answer (values as strings) -> ``VMConfig``."""
    disks: dict[str, Disk] = {}
    nets: dict[int, Nic] = {}
    hostpci: dict[int, HostPci] = {}
    ipconfigs: dict[int, IpConfig] = {}
    for key, value in raw.items():
        if _DISK_KEY.match(key):
            disk = parse_disk(key, value)
            if disk is not None:
                disks[key] = disk
            continue
        m = _INDEXED.match(key)
        if m is None:
            continue
        kind, index = m.group(1), int(m.group(2))
        if kind == "net":
            nets[index] = parse_nic(index, value)
        elif kind == "hostpci":
            hostpci[index] = parse_hostpci(index, value)
        else:
            ipconfigs[index] = parse_ipconfig(index, value)
    memory = raw.get("memory", "512").removeprefix("current=").split(",")[0]
    sshkeys = raw.get("sshkeys")
    return VMConfig(
        cores=int(raw.get("cores", "1")),
        memory_mib=int(memory),
        disks=disks,
        nets=nets,
        hostpci=hostpci,
        ipconfigs=ipconfigs,
        nameserver=raw.get("nameserver"),
        searchdomain=raw.get("searchdomain"),
        ciuser=raw.get("ciuser"),
        sshkeys=percent_decode(sshkeys) if sshkeys is not None else None,
        tags=parse_tags(raw.get("tags", "")),
        description=raw.get("description", ""),
        smbios_uuid=_smbios_uuid(raw.get("smbios1")),
    )


def _smbios_uuid(value: str | None) -> str | None:
    """``smbios1: uuid=…,manufacturer=…`` -> the uuid, lower-case (as the kubelet reports it)."""
    if value is None:
        return None
    uuid = split_props(value)[1].get("uuid")
    return uuid.lower() if uuid else None
