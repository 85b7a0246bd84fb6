"""Sizes in the fleet spec: ``<whole number><binary unit>``, e.g. ``16GiB``, ``100GiB``, ``1TiB``.

Only binary units are accepted (``KiB``, ``MiB``, ``GiB``, ``TiB``): Proxmox counts memory in MiB
and disks in powers of 1024, so a decimal ``GB`` would silently mean something else than what
the operator sees in the Proxmox UI. Anything that looks like a decimal or abbreviated unit
(``128Gb``, ``128GB``, ``128G``, ``128g``) is rejected with the spelling that was probably meant.
A bare integer is rejected too: it is ambiguous (bytes? MiB?).

Pure: string in, integer out; every failure is a ``ValueError`` whose text a user can act on.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
SIZE_PATTERN = r"^[1-9][0-9]*(KiB|MiB|GiB|TiB)$"  # the JSON Schema pattern; the parser agrees

_SIZE_RE = re.compile(r"^([0-9]+)(KiB|MiB|GiB|TiB)$")
_LOOSE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_HINT_UNIT = {"k": "KiB", "m": "MiB", "g": "GiB", "t": "TiB"}


def parse_size(text: str) -> int:
    """The number of bytes ``text`` means, or ``ValueError`` with a suggestion."""
    m = _SIZE_RE.match(text)
    if m is not None:
        number = int(m.group(1))
        if number == 0:
            raise ValueError(f"size {text!r} must be greater than zero")
        return number * UNITS[m.group(2)]
    raise ValueError(_explain(text))


def _explain(text: str) -> str:
    base = f"invalid size {text!r}"
    usage = "sizes are a whole number with a binary unit: KiB, MiB, GiB or TiB (e.g. '16GiB')"
    loose = _LOOSE_RE.match(text)
    if loose is None:
        return f"{base}: {usage}"
    number, unit = loose.group(1), loose.group(2)
    if not unit:
        return f"{base}: a size needs a unit; {usage}"
    if "." in number:
        return f"{base}: use a whole number with a smaller unit; {usage}"
    canonical = _HINT_UNIT.get(unit[0].lower())
    if canonical is None:
        return f"{base}: unknown unit {unit!r}; {usage}"
    return f"{base}: did you mean '{number}{canonical}'? {usage}"


def size_to_mib(text: str) -> int:
    """A memory size in MiB (Proxmox's unit); ``ValueError`` unless it is a whole number of MiB."""
    size = parse_size(text)
    if size % UNITS["MiB"]:
        raise ValueError(f"memory {text!r} must be a whole number of MiB")
    return size // UNITS["MiB"]


def format_size(size_bytes: int) -> str:
    """The largest binary unit that shows ``size_bytes`` exactly: ``"100GiB"``, else bytes."""
    for unit, factor in sorted(UNITS.items(), key=lambda kv: -kv[1]):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes} bytes"
