"""pve-common's address and volume formats (``JSONSchema.pm``, pve-storage ``Plugin.pm``,
qemu-server ``QemuServer.pm``/``Drive.pm``) with their ``die`` texts: MAC, IPv4/IPv6, CIDR,
the cloud-init IP configs, DNS-name-or-IP addresses, disk sizes, bridges, volume ids, storage
pairs, boot devices and boot disks.

IP addresses are parsed with ``ipaddress`` (PVE's ``IPV4RE`` also takes leading zeros, which
``ipaddress`` refuses — an approximation on a value nobody sends).
"""

from __future__ import annotations

import ipaddress
import re

from provisiond.sim.pve.formats import matching
from provisiond.sim.pve.params.qemu import DISKS, NUMBERED

_MAC = re.compile(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", re.IGNORECASE)
_DNS = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?$"
)
_SIZE = re.compile(r"^\d+(?:\.\d+)?[KMGT]?$")
_BRIDGE = re.compile(r"^[-_.\w\d]+$")
_VOLUME = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$", re.IGNORECASE)
_STORAGE = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_NUMBERED = re.compile(r"^([a-z]+)(\d+)$")


mac_addr = matching(_MAC, "value does not look like a valid unicast MAC address")


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def ipv4(value: str) -> None:
    if not _is_ip(value, 4):
        raise ValueError("value does not look like a valid IPv4 address")


def ipv6(value: str) -> None:
    if not _is_ip(value, 6):
        raise ValueError("value does not look like a valid IPv6 address")


def _cidr(value: str, version: int) -> bool:
    ip, sep, bits = value.partition("/")
    top = 32 if version == 4 else 128
    return bool(sep) and bits.isdigit() and 7 < int(bits) <= top and _is_ip(ip, version)


def cidr(value: str) -> None:
    if not (_cidr(value, 4) or _cidr(value, 6)):
        raise ValueError("value does not look like a valid CIDR network")


def ipv4_config(value: str) -> None:
    if value not in ("dhcp", "manual") and not _cidr(value, 4):
        raise ValueError("value does not look like a valid ipv4 network configuration")


def ipv6_config(value: str) -> None:
    if value not in ("auto", "dhcp", "manual") and not _cidr(value, 6):
        raise ValueError("value does not look like a valid ipv6 network configuration")


def address(value: str) -> None:
    if not (_is_ip(value, 4) or _is_ip(value, 6) or _DNS.match(value)):
        raise ValueError(f"value does not look like a valid address: {value}")


disk_size = matching(_SIZE, "value does not look like a valid disk size: {value}")
bridge_id = matching(_BRIDGE, "invalid bridge ID '{value}'")
volume_id = matching(_VOLUME, "unable to parse volume ID '{value}'")


def volume_id_or_absolute_path(value: str) -> None:
    if not value.startswith("/"):
        volume_id(value)


def volume_id_or_qm_path(value: str) -> None:
    if value not in ("none", "cdrom"):
        volume_id_or_absolute_path(value)


def storage_pair(value: str) -> None:
    """One entry of pve-common ``parse_idmap`` over storage ids (``1``, ``<id>``, ``<a>:<b>``)."""
    if value == "1":
        return
    for part in value.split(":") if value.count(":") == 1 else [value]:
        if not _STORAGE.match(part):
            raise ValueError(
                f"entry '{value}' contains invalid ID - storage ID '{part}' contains illegal "
                "characters"
            )


def boot_device(value: str) -> None:
    """qemu-server ``verify_bootdev``: a disk (not efidisk/tpmstate) or a NIC/USB/PCI slot."""
    if value in DISKS and not value.startswith(("efidisk", "tpmstate")):
        return
    m = _NUMBERED.match(value)
    if m and m.group(1) in ("net", "usb", "hostpci") and int(m.group(2)) < NUMBERED[m.group(1)]:
        return
    raise ValueError(f"invalid boot device '{value}'")


def boot_disk(value: str) -> None:
    """qemu-server ``verify_bootdisk``."""
    if value not in DISKS:
        raise ValueError(f"invalid boot disk '{value}'")
