"""Field types of topology documents: names, PCI ids, sizes, VMIDs, and the base model.

``parse_size`` reads the sizes a topology writes the way Proxmox does (``100G`` is 100 GiB) and
also the decimal ``GB`` units; the fleet spec's stricter sizes are ``core.units``. Every
constrained string type raises ``ValueError("invalid <what> …")`` so pydantic reports the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_VERSION = "provisiond.dev/v1alpha1"
KIND = "Topology"
VMID_MIN = 100
VMID_MAX = 999_999_999

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?(?:i?b)?)\s*$", re.IGNORECASE)

PCI_ADDRESS_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
PCI_ID_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)  # PVE_TAG_RE
NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")  # node names, DNS labels
NODE_PRIORITY_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?(?::\d+)?$")  # ha-node
CONFIG_ID_RE = re.compile(r"^[a-z][a-z0-9_\-]{1,39}$", re.IGNORECASE)  # pve-configid
POOL_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")  # pve-poolid
USERID_RE = re.compile(r"^[^\s:/@]+@[A-Za-z][A-Za-z0-9.\-_]+$")
TOKEN_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
DISK_SLOT_RE = re.compile(r"^(?:scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0|tpmstate0)$")


def parse_size(value: object) -> int:
    """A size in bytes: an int, or ``<number><unit>``.

    Units: ``K M G T P`` and ``KiB … PiB`` are binary (Proxmox writes ``100G`` for 100 GiB);
    ``KB … PB`` are decimal. A bare number is bytes. Raises ``ValueError`` otherwise.
    """
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '64GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a size must be a number of bytes or a string like '64GiB'")
    m = _SIZE_RE.match(value)
    if m is None:
        raise ValueError(f"invalid size {value!r} (expected e.g. '64GiB', '100G', '2TB')")
    number, unit = m.group(1), m.group(2).lower()
    if unit in _DECIMAL:
        factor = _DECIMAL[unit]
    else:
        factor = _BINARY[unit.removesuffix("ib").removesuffix("b")]
    return int(float(number) * factor)


Size = Annotated[int, BeforeValidator(parse_size)]


def matches(regex: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not regex.match(value):
            raise ValueError(f"invalid {what} {value!r}")
        return value

    return BeforeValidator(check)


PciAddress = Annotated[str, matches(PCI_ADDRESS_RE, "PCI address (expected 0000:01:00.0)")]
PciId = Annotated[str, matches(PCI_ID_RE, "PCI id (expected vendor:device, e.g. 10de:20f1)")]
HostName = Annotated[str, matches(NAME_RE, "host name")]
ConfigId = Annotated[str, matches(CONFIG_ID_RE, "id (letters, digits, '-', '_')")]
Vmid = Annotated[int, Field(ge=VMID_MIN, le=VMID_MAX)]
Tag = Annotated[str, matches(TAG_RE, "tag (allowed: a-z 0-9 _ . + -)")]


class Model(BaseModel):
    """Frozen, unknown fields rejected, camelCase keys in YAML (snake_case accepted too)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )
