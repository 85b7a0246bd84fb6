"""The observer's cache of VM configs, and when each is due to be read again.

A VM's entry (its current config and the one with pending changes merged, from one
``GET …/pending``) is served while all of these hold:
- its ``/cluster/resources`` entry is what it was at the read (host, status, lock, tags, name,
  cpus, memory: ``signature``);
- its ``uptime`` there did not go down since the last cycle (a restart between two cycles —
  ``qm reboot`` applies pending changes — leaves the status ``running`` at both);
- no periodic refresh fell due: once per ``ttl`` (``daemon.cache_ttl``) for a VM a fleet owns
  and for a template, once per ``foreign_ttl`` (``daemon.foreign_cache_ttl``) for a foreign one,
  each on the VM's own phase (``on_phase``), so refreshes are spread evenly over the cycles.

Whether a VM is foreign is decided by the caller when it stores the entry (from core's
ownership rule); it is fixed while the entry is, as the tags are part of the signature.
``forget`` drops an entry (the executor wrote to the VM or is about to act on it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from provisiond.core.observed import VMConfig

Configs = tuple[VMConfig | None, VMConfig | None]  # (current, pending merged or None)


def on_phase(at: float, now: float, phase: float, period: float) -> bool:
    """Whether a value read at ``at`` is still fresh at ``now``: its refreshes fall on its own
    ``phase`` (in [0, 1)) of a ``period``-long cycle — due once the clock has passed
    ``(k - phase) * period`` for a ``k`` it had not passed at the read — so each is re-read once
    per ``period`` (never staler than that while its phase stays) and, whatever the cold cycle
    that filled them all, the refreshes of N values are spread evenly: about
    ``N * interval / period`` per cycle, every cycle."""
    offset = phase * period
    return (now + offset) // period == (at + offset) // period


def vm_phase(vmid: int) -> float:
    """A VM's refresh phase: consecutive VMIDs land far apart, all of [0, 1) is used."""
    return (vmid * 7919 % 1000) / 1000


def vm_signature(item: Mapping[str, Any]) -> tuple[object, ...]:
    return tuple(
        item.get(k) for k in ("node", "status", "lock", "tags", "name", "maxcpu", "maxmem")
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Configs
    at: float
    signature: tuple[object, ...]
    foreign: bool


class VmConfigs:
    """Cached configs by VMID, with the uptime each running VM had when last seen."""

    def __init__(self, *, ttl: float, foreign_ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._foreign_ttl = foreign_ttl
        self._clock = clock
        self._entries: dict[int, _Entry] = {}
        self._uptimes: dict[int, int] = {}

    def last(self, vmid: int) -> Configs | None:
        """The last good read, fresh or not (an offline host's VM, a failed re-read)."""
        entry = self._entries.get(vmid)
        return entry.value if entry is not None else None

    def fresh(self, item: Mapping[str, Any]) -> Configs | None:
        """The cached configs of the VM of this resource entry, or None when it must be read."""
        vmid = int(item["vmid"])
        entry = self._entries.get(vmid)
        uptime = _uptime(item)
        seen = self._uptimes.get(vmid)
        if entry is None or entry.signature != vm_signature(item):
            return None
        if uptime is not None and seen is not None and uptime < seen:
            return None  # restarted; not remembered until read, so a failed read retries
        period = self._foreign_ttl if entry.foreign else self._ttl
        if not on_phase(entry.at, self._clock(), vm_phase(vmid), period):
            return None
        self._remember(vmid, uptime)
        return entry.value

    def store(self, item: Mapping[str, Any], value: Configs, *, foreign: bool) -> None:
        vmid = int(item["vmid"])
        self._entries[vmid] = _Entry(value, self._clock(), vm_signature(item), foreign)
        self._remember(vmid, _uptime(item))

    def forget(self, vmid: int) -> None:
        self._entries.pop(vmid, None)

    def keep(self, present: Iterable[int]) -> None:
        """Forget the VMs that no longer exist."""
        kept = set(present)
        self._entries = {v: e for v, e in self._entries.items() if v in kept}
        self._uptimes = {v: u for v, u in self._uptimes.items() if v in kept}

    def _remember(self, vmid: int, uptime: int | None) -> None:
        if uptime is None:
            self._uptimes.pop(vmid, None)
        else:
            self._uptimes[vmid] = uptime


def _uptime(item: Mapping[str, Any]) -> int | None:
    return int(item["uptime"]) if item.get("uptime") is not None else None
