"""Format checks of the VM options and pool parameters beyond pve-common's basic ones
(``validation.FORMATS`` holds both), the key check of property-string options, and the two
parsers every part of the simulator shares: pve-common's ``split_list`` and property strings.

Each check raises ``ValueError`` with the format's ``die`` text; ``validation`` prefixes it with
``invalid format - `` as pve-common does. Texts taken from pve-common / qemu-server:
``unable to parse startup options``, ``invalid hotplug feature '<f>'``, ``pool name '<p>'
contains illegal characters``. The CPU-set and property-string texts are approximated
(docs/simulator.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from provisiond.sim.pve.params.vmoptions import PROPSTRING_KEYS

_STARTUP_PART = re.compile(r"^(?:(?:order=)?\d+|up=\d+|down=\d+)$")
_HOTPLUG = frozenset({"network", "disk", "cpu", "memory", "usb", "cloudinit"})
_CPUSET = re.compile(r"^\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$")
_POOLID = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+){0,2}$")
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_NUMBERED = re.compile(r"^([a-z]+)(\d+)$")


def split_list(value: str) -> list[str]:
    """pve-common ``split_list``: items separated by ``,``, ``;``, or whitespace."""
    return [v for v in re.split(r"[,;\s]+", value) if v]


def _propstring_parts(value: str) -> Iterator[tuple[str | None, str]]:
    """A property string's parts in order: ``(key, value)``, or ``(None, part)`` for a bare
    value (the format's default key, if it has one)."""
    for part in value.split(","):
        if part:
            key, sep, val = part.partition("=")
            yield (key, val) if sep else (None, part)


def split_propstring(value: str, default_key: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, val in _propstring_parts(value):
        name = default_key if key is None else key
        if name is None:
            raise ValueError(f"value without key, but schema does not define a default key: {val}")
        out[name] = val
    return out


def startup_order(value: str) -> None:
    """pve-common ``pve_verify_startup_order``: ``[order=]N,up=N,down=N``."""
    if not value or not all(_STARTUP_PART.match(p) for p in value.split(",") if p.strip()):
        raise ValueError("unable to parse startup options")


def hotplug_features(value: str) -> None:
    """qemu-server ``parse_hotplug_features``: ``0``, ``1`` or a list of features."""
    if value in ("0", "1"):
        return
    for feature in split_list(value):
        if feature not in _HOTPLUG:
            raise ValueError(f"invalid hotplug feature '{feature}'")


def cpuset(value: str) -> None:
    if not _CPUSET.match(value):
        raise ValueError(f"unable to parse cpuset '{value}'")


def poolid(value: str) -> None:
    if not _POOLID.match(value):
        raise ValueError(f"pool name '{value}' contains illegal characters")


def vmid_list(value: str) -> None:
    for item in split_list(value):
        if not re.match(r"^[1-9][0-9]{2,8}$", item):
            raise ValueError(f"value '{item}' does not look like a valid VM ID")


def storage_id_list(value: str) -> None:
    for item in split_list(value):
        if not _STORAGE_ID.match(item):
            raise ValueError(f"storage ID '{item}' contains illegal characters")


def propstring_keys(name: str, value: str) -> str | None:
    """The error of a property-string option whose value uses a key its format does not define
    (or a bare value where the format has no default key); None when the keys are fine or the
    option is not a property string."""
    m = _NUMBERED.match(name)
    schema_name = f"{m.group(1)}[n]" if m and f"{m.group(1)}[n]" in PROPSTRING_KEYS else name
    entry = PROPSTRING_KEYS.get(schema_name)
    if entry is None:
        return None
    default_key, keys = entry
    allowed = set(keys.split())
    for key, part in _propstring_parts(value):
        if key is None:
            if default_key is None:
                return (
                    "invalid format - format error\nvalue without key, but schema does not "
                    f"define a default key: {part}\n"
                )
        elif key not in allowed:
            return f"invalid format - format error\n{key}: property is not defined in schema\n"
    return None
