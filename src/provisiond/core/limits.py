"""How large a fleet spec may be, and the absolute bounds of values Proxmox itself bounds.

A spec is operator input the daemon re-reads on every change: a typo (``count: 900000000``), a
pasted YAML "billion laughs" or a runaway generator must be refused in well under a second, with
``file:line``, instead of exhausting memory or the stack. ``SpecLimits`` holds the sizes the
loader (``adapters.specfile``) and ``core.validation`` enforce; the defaults are documented in
docs/fleet-spec.md ("Limits") and are generous for any real cluster (Proxmox clusters have tens
of hosts, not thousands).

The value bounds follow Proxmox VE:
- memory: the API schema's minimum is 16 MiB (``memory.current``, qemu-server); qemu-server
  caps hot-pluggable memory at 4 TiB (``Memory.pm`` ``get_max_mem``) — no VM gets more here;
- cores: at most 1024 (``core.spec``); Proxmox refuses to start a VM with more vCPUs than its
  host has logical CPUs, which ``validate`` checks against a topology (``core.hostbounds``);
- disks: the schema gives no maximum; 1 PiB is a sanity bound (no Proxmox storage holds such a
  volume), so a unit typo cannot ask a storage to grow a disk — irreversibly — by 1024 times.

Pure: constants and checks on plain values; every failure is a ``ValueError`` a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisiond.core.units import UNITS, format_size, parse_size

MIB = UNITS["MiB"]
MEMORY_MIN = 16 * MIB  # PVE schema: memory.current minimum 16 (MiB)
MEMORY_MAX = 4 * UNITS["TiB"]  # qemu-server Memory.pm: hot-pluggable memory max 4 TiB
DISK_MAX = 1024 * UNITS["TiB"]  # sanity bound (1 PiB); PVE's schema has none


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """Sizes a set of spec documents may not exceed (defaults: docs/fleet-spec.md, "Limits")."""

    max_vms_per_pool: int = 10_000
    max_vms: int = 10_000  # across every fleet of the spec paths together
    max_file_bytes: int = 1 << 20  # one spec file (all its documents)
    max_total_bytes: int = 2 << 20  # every spec file together
    max_depth: int = 64  # nesting of mappings and lists in one document
    max_alias_nodes: int = 10_000  # values repeated by aliases, per document


DEFAULT_LIMITS = SpecLimits()


def check_memory(text: str) -> None:
    """``ValueError`` unless ``text`` is a memory size Proxmox can give one VM."""
    size = parse_size(text)
    if size < MEMORY_MIN:
        raise ValueError(f"memory {text!r} is below 16MiB, the least Proxmox gives a VM")
    if size > MEMORY_MAX:
        raise ValueError(
            f"memory {text!r} is more than {format_size(MEMORY_MAX)}, the most Proxmox gives one "
            "VM; check the unit (MiB, GiB, TiB)"
        )


def check_disk_size(text: str) -> None:
    """``ValueError`` unless ``text`` is a disk size below the sanity bound."""
    if parse_size(text) > DISK_MAX:
        raise ValueError(
            f"disk size {text!r} is more than {format_size(DISK_MAX)}; check the unit (GiB, TiB) "
            "— disks grow and never shrink"
        )
