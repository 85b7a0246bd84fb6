"""Format checks of the VM options and pool parameters beyond pve-common's basic ones
(``validation.FORMATS`` holds both; the addresses and volume ids are in ``netformats``), and
the two parsers every part of the simulator shares: pve-common's ``split_list`` and property
strings.

Each check raises ``ValueError`` with the format's ``die`` text; ``validation`` prefixes it with
``invalid format - `` as pve-common does. Texts taken from pve-common / qemu-server:
``unable to parse startup options``, ``invalid hotplug feature '<f>'``, ``pool name '<p>'
contains illegal characters``, ``invalid boot device '<d>'``, ``Built-in cputype '<t>' is not
defined (missing 'custom-' prefix?)``. The CPU-set text is approximated (docs/simulator.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_STARTUP_PART = re.compile(r"^(?:(?:order=)?\d+|up=\d+|down=\d+)$")
_HOTPLUG = frozenset({"network", "disk", "cpu", "memory", "usb", "cloudinit"})
_CPUSET = re.compile(r"^\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$")
_POOLID = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+){0,2}$")
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_NUMBERED = re.compile(r"^([a-z]+)(\d+)$")
_VMID = re.compile(r"^[1-9][0-9]{2,8}$")


def split_list(value: str) -> list[str]:
    """pve-common ``split_list``: items separated by ``,``, ``;``, or whitespace."""
    return [v for v in re.split(r"[,;\s]+", value) if v]


def matching(pattern: re.Pattern[str], die: str) -> Callable[[str], None]:
    """The check of a format that is one regular expression: ``ValueError`` with ``die`` (its
    ``{value}`` filled in) when ``pattern`` does not match."""

    def check(value: str) -> None:
        if not pattern.match(value):
            raise ValueError(die.format(value=value))

    return check


def each_matching(pattern: re.Pattern[str], die: str) -> Callable[[str], None]:
    """``matching`` for every item of a ``split_list`` (``{value}``: the item that fails)."""
    item_check = matching(pattern, die)

    def check(value: str) -> None:
        for item in split_list(value):
            item_check(item)

    return check


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


cpuset = matching(_CPUSET, "unable to parse cpuset '{value}'")
poolid = matching(_POOLID, "pool name '{value}' contains illegal characters")
vmid_list = each_matching(_VMID, "value '{value}' does not look like a valid VM ID")
storage_id_list = each_matching(_STORAGE_ID, "storage ID '{value}' contains illegal characters")


# qemu-server CPUConfig: the built-in CPU models a VM's ``cpu`` may name, and the flags a VM may set
CPU_MODELS = frozenset(
    [
        "486",
        "pentium",
        "pentium2",
        "pentium3",
        "coreduo",
        "core2duo",
        "Conroe",
        "Penryn",
        "Nehalem",
        "Nehalem-IBRS",
        "Westmere",
        "Westmere-IBRS",
        "SandyBridge",
        "SandyBridge-IBRS",
        "IvyBridge",
        "IvyBridge-IBRS",
        "Haswell",
        "Haswell-IBRS",
        "Haswell-noTSX",
        "Haswell-noTSX-IBRS",
        "Broadwell",
        "Broadwell-IBRS",
        "Broadwell-noTSX",
        "Broadwell-noTSX-IBRS",
        "Skylake-Client",
        "Skylake-Client-IBRS",
        "Skylake-Client-noTSX-IBRS",
        "Skylake-Client-v4",
        "Skylake-Server",
        "Skylake-Server-IBRS",
        "Skylake-Server-noTSX-IBRS",
        "Skylake-Server-v4",
        "Skylake-Server-v5",
        "Cascadelake-Server",
        "Cascadelake-Server-v2",
        "Cascadelake-Server-noTSX",
        "Cascadelake-Server-v4",
        "Cascadelake-Server-v5",
        "Cooperlake",
        "Cooperlake-v2",
        "KnightsMill",
        "Icelake-Client",
        "Icelake-Client-noTSX",
        "Icelake-Server",
        "Icelake-Server-noTSX",
        "Icelake-Server-v3",
        "Icelake-Server-v4",
        "Icelake-Server-v5",
        "Icelake-Server-v6",
        "SapphireRapids",
        "SapphireRapids-v2",
        "GraniteRapids",
        "athlon",
        "phenom",
        "Opteron_G1",
        "Opteron_G2",
        "Opteron_G3",
        "Opteron_G4",
        "Opteron_G5",
        "EPYC",
        "EPYC-IBPB",
        "EPYC-v3",
        "EPYC-v4",
        "EPYC-Rome",
        "EPYC-Rome-v2",
        "EPYC-Rome-v3",
        "EPYC-Rome-v4",
        "EPYC-Milan",
        "EPYC-Milan-v2",
        "EPYC-Genoa",
        "host",
        "kvm32",
        "kvm64",
        "qemu32",
        "qemu64",
        "max",
        "x86-64-v2",
        "x86-64-v2-AES",
        "x86-64-v3",
        "x86-64-v4",
    ]
)
VM_CPU_FLAGS = [
    "pcid",
    "spec-ctrl",
    "ibpb",
    "ssbd",
    "virt-ssbd",
    "amd-ssbd",
    "amd-no-ssb",
    "pdpe1gb",
    "md-clear",
    "hv-tlbflush",
    "hv-evmcs",
    "aes",
]
_VM_FLAG = "[+-](?:" + "|".join(re.escape(f) for f in VM_CPU_FLAGS) + ")"
_VM_FLAGS = re.compile(f"^{_VM_FLAG}(?:;{_VM_FLAG})*$")


def vm_cpu(props: dict[str, str]) -> None:
    """qemu-server ``validate_vm_cpu_conf`` (no custom CPU models are simulated)."""
    cputype = props.get("cputype")
    if not cputype:
        raise ValueError("CPU is missing cputype")
    if cputype.startswith("custom-"):
        raise ValueError(f"Custom cputype '{cputype.removeprefix('custom-')}' not found")
    if cputype not in CPU_MODELS:
        raise ValueError(f"Built-in cputype '{cputype}' is not defined (missing 'custom-' prefix?)")
    if props.get("flags") and not _VM_FLAGS.match(props["flags"]):
        raise ValueError(f"VM-specific CPU flags must be a subset of: {', '.join(VM_CPU_FLAGS)}")
    if "reported-model" in props:
        raise ValueError("Property 'reported-model' not allowed in VM-specific CPU config.")


def phys_bits(value: str) -> None:
    if not re.match(r"^(host|\d{1,2})$", value) or (value.isdigit() and not 8 <= int(value) <= 64):
        raise ValueError("value must be an integer between 8 and 64 or 'host'")
