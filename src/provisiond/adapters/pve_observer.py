"""Observation of a Proxmox VE cluster with as few API calls as possible.

Every cycle costs two requests whatever the fleet size: ``GET /cluster/resources`` (hosts, VMs
with host/status/lock/tags, storages) and ``GET /cluster/tasks`` (running clones and migrations,
for adoption). Everything else is cached and refreshed on a slower period (``cache_ttl``) or
when the resource list shows a change:
- a VM's config and pending changes — one ``GET …/pending`` gives both (``value`` is the current
  value, ``pending``/``delete`` the change waiting for a reboot) — refetched when the VM's
  resource entry changes (host, status, lock, tags, name, cpus, memory), when its ``uptime``
  there went down (restarted between two cycles, so its status looked unchanged), when the
  executor wrote to it or read it to act on it (``invalidate``), and on the VM's own phase
  (spread evenly over the cycles; ``pve_vmconfigs``): once per ``cache_ttl`` for a VM a fleet
  owns (or a template), once per ``foreign_cache_ttl`` for a *foreign* one
  (``core.ownership.owner`` finds no fleet in its tags nor the clone's marker in its
  description);
- per-host storage (``/nodes/{n}/storage``) and PCI devices (``/nodes/{n}/hardware/pci``) —
  once per ``cache_ttl`` on the host's own phase (its rank among the cluster's hosts), so the
  two lists of 200 hosts come due a few at a time, not all 400 in one cycle;
- PCI mappings (``/cluster/mapping/pci``: one request) once per ``cache_ttl``.

Why a foreign VM's config may be older (docs/performance.md, "Foreign VMs' configs"): provisiond
never acts on one (adopting it starts with a fresh read and a tag write); it takes from it only
what the VM holds (GPUs, disks' storages); all else is in ``/cluster/resources``, whose changes
re-read at once. ``hostpciN`` is not hot-pluggable (SEMANTICS §5): on a running VM a hand-made
change is pending until a restart — a status change or a lower ``uptime``, re-read the next
cycle; a mapped device binds at start among free ones, so PVE refuses a stopped foreign VM's
start if its new GPU is in use, and its start re-reads it. Noticed only at the refresh (within
``foreign_cache_ttl`` + a cycle): config-only changes that need no restart — a stopped VM's new
GPU claim (meanwhile a fleet's VM may be given that device: PVE then refuses the foreign VM's
start), a moved disk, a hot-plugged NIC, the description.

The executor's fresh reads of one VM (``vm_status``, ``vm_config``) go to the VM's host — one
request each, whatever the cluster's size; ``find_vm`` lists every VM and is for when the host
is not known.

Not reaching Proxmox at all (``core.errors.ACCESS_ERRORS`` on ``/cluster/resources``: refused,
TLS, a rejected token) raises: that is no observation, not an empty cluster. Any other failure
to read is reported in ``Unobserved`` and never guessed: an offline host is not
asked (its VMs are ``unknown`` in the resource list), a failed config read leaves that VM's
``config`` as the last good one or ``None``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from provisiond.adapters.proxmox import ProxmoxClient
from provisiond.adapters.pve_hareader import HaReader
from provisiond.adapters.pve_vmconfigs import Configs, VmConfigs, on_phase
from provisiond.core.errors import ACCESS_ERRORS, AuthError, PermanentError, ProvisiondError
from provisiond.core.hacluster import HaRule
from provisiond.core.observed import (
    Host,
    MappingEntry,
    ObservedState,
    ObservedVM,
    PciDevice,
    PciMapping,
    Storage,
    Task,
    Unobserved,
    VMConfig,
    VMStatus,
)
from provisiond.core.ownership import owner
from provisiond.core.ports import VMConfigRead
from provisiond.core.pveconfig import parse_config, parse_tags, split_props

log = structlog.get_logger("provisiond.observer")

MIB = 1 << 20
T = TypeVar("T")
_STATUSES = {s.value: s for s in VMStatus}


@dataclass(frozen=True, slots=True)
class _Cached(Generic[T]):
    value: T
    at: float


def _pve_bool(value: object) -> bool:
    return str(value) in ("1", "true", "True")


def _configs_from_pending(
    items: list[dict[str, Any]],
) -> tuple[VMConfig, VMConfig | None]:
    """``GET …/pending`` → (current config, config with pending merged or None)."""
    current: dict[str, str] = {}
    merged: dict[str, str] = {}
    has_pending = False
    for item in items:
        key = str(item["key"])
        if "value" in item:
            current[key] = str(item["value"])
            merged[key] = str(item["value"])
        if "pending" in item:
            merged[key] = str(item["pending"])
            has_pending = True
        if int(item.get("delete", 0) or 0):
            merged.pop(key, None)
            has_pending = True
    return parse_config(current), parse_config(merged) if has_pending else None


def _mapping(raw: Mapping[str, Any]) -> PciMapping:
    entries: list[MappingEntry] = []
    for entry in raw.get("map", []) or []:
        _, props = split_props(str(entry))
        node = props.get("node")
        if node:
            entries.append(MappingEntry(host=node, paths=tuple(props.get("path", "").split(";"))))
    return PciMapping(
        id=str(raw["id"]),
        entries=tuple(entries),
        live_migration=_pve_bool(raw.get("live-migration-capable", 0)),
    )


class ProxmoxObserver:
    """Implements ``core.ports.ClusterReader`` over a ``ProxmoxClient``."""

    def __init__(
        self,
        client: ProxmoxClient,
        *,
        cache_ttl: float = 300.0,
        foreign_cache_ttl: float | None = None,
        self_vmid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``foreign_cache_ttl``: the periodic refresh of foreign VMs' configs (None: as
        ``cache_ttl``); never shorter than ``cache_ttl`` (``DaemonSettings`` checks it too)."""
        if foreign_cache_ttl is not None and foreign_cache_ttl < cache_ttl:
            raise ValueError(
                f"foreign_cache_ttl ({foreign_cache_ttl:g} s) is shorter than cache_ttl"
                f" ({cache_ttl:g} s)"
            )
        self._client = client
        self._ttl = cache_ttl
        self._self_vmid = self_vmid
        self._clock = clock
        self._configs = VmConfigs(
            ttl=cache_ttl,
            foreign_ttl=cache_ttl if foreign_cache_ttl is None else foreign_cache_ttl,
            clock=clock,
        )
        self._mappings: _Cached[tuple[PciMapping, ...]] | None = None
        self._storages: dict[str, _Cached[tuple[Storage, ...]]] = {}
        self._pci: dict[str, _Cached[tuple[PciDevice, ...]]] = {}
        # PVE 9.x rules, crs; HA node maintenance (8.x and 9.x)
        self._ha = HaReader(client, cache_ttl=cache_ttl, clock=clock)

    def invalidate(self, vmid: int) -> None:
        """Forget a VM's cached config (the executor wrote to it)."""
        self._configs.forget(vmid)

    def invalidate_rules(self) -> None:
        """Read the PVE 9.x HA rules again next cycle (the executor wrote one)."""
        self._ha.invalidate()

    async def ha_rules(self) -> tuple[HaRule, ...]:
        return await self._ha.rules()

    def _fresh(self, entry: _Cached[Any] | None, phase: float | None = None) -> bool:
        """Cached and not due for its periodic refresh: younger than ``cache_ttl``, or with
        ``phase`` (a host's rank) not past its next phased refresh (``pve_vmconfigs.on_phase``,
        the VM configs' rule)."""
        if entry is None:
            return False
        if phase is None:
            return self._clock() - entry.at < self._ttl
        return on_phase(entry.at, self._clock(), phase, self._ttl)

    # -- cluster-wide reads -------------------------------------------------------------------

    async def _resources(self) -> list[dict[str, Any]]:
        data = await self._client.get("/cluster/resources")
        return list(data or [])

    async def active_tasks(self) -> tuple[Task, ...]:
        data = await self._client.get("/cluster/tasks")
        return tuple(
            Task(
                upid=str(t["upid"]),
                type=str(t["type"]),
                id=str(t.get("id", "")),
                node=str(t["node"]),
            )
            for t in (data or [])
            if not t.get("endtime") and str(t.get("status", "RUNNING")).upper() == "RUNNING"
        )

    async def find_vm(self, vmid: int) -> ObservedVM | None:
        """One VM, re-read now: its resource entry, and its config unless cached and unchanged."""
        for item in await self._client.get("/cluster/resources", {"type": "vm"}) or []:
            if item.get("type") == "qemu" and int(item["vmid"]) == vmid:
                if item.get("status") == "unknown":  # its host is offline: do not ask it
                    return self._vm(item, self._configs.last(vmid) or (None, None))
                # Fresh or cached-and-unchanged config: ownership (the description marker)
                # and the effect of a write (caches are invalidated on write) are provable.
                return self._vm(item, await self._get_config(item, []))
        return None

    async def vm_status(self, vmid: int, host: str) -> ObservedVM | None:
        """``GET …/status/current`` on ``host``: one request, whatever the cluster's size."""
        data = await self._on_host("/nodes/{node}/qemu/{vmid}/status/current", vmid, host)
        if data is None:
            return None
        ha = data.get("ha") or {}
        return ObservedVM(
            vmid=vmid,
            name=str(data.get("name", f"VM {vmid}")),
            host=host,
            status=_STATUSES.get(str(data.get("status")), VMStatus.UNKNOWN),
            cores=int(data.get("cpus", 0) or 0),
            memory_mib=int(data.get("maxmem", 0) or 0) // MIB,
            template=_pve_bool(data.get("template", 0)),
            lock=str(data["lock"]) if data.get("lock") else None,
            tags=parse_tags(str(data.get("tags", ""))),
            ha_state="managed" if _pve_bool(ha.get("managed", 0)) else None,
        )

    async def vm_config(self, vmid: int, host: str) -> VMConfigRead | None:
        """``GET …/config`` on ``host`` (pending merged, with ``digest``). The VM is being acted
        on: its cached config is dropped so the next observation reads the outcome."""
        self.invalidate(vmid)
        data = await self._on_host("/nodes/{node}/qemu/{vmid}/config", vmid, host)
        if data is None:
            return None
        raw = {str(k): str(v) for k, v in data.items() if k not in ("digest", "lock")}
        return VMConfigRead(
            vmid=vmid,
            host=host,
            config=parse_config(raw),
            digest=str(data["digest"]) if data.get("digest") else None,
            lock=str(data["lock"]) if data.get("lock") else None,
        )

    async def _on_host(self, template: str, vmid: int, host: str) -> Mapping[str, Any] | None:
        """A per-VM GET; ``None`` when PVE says the VM's config does not exist on ``host``."""
        try:
            data = await self._client.get(template, node=host, vmid=vmid)
        except PermanentError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return data if isinstance(data, Mapping) else {}

    async def permissions(self) -> dict[str, dict[str, bool]]:
        """The token's privileges: ``GET /access/permissions`` (path → {priv: propagate})."""
        data = await self._client.get("/access/permissions")
        return {
            str(path): {str(priv): _pve_bool(flag) for priv, flag in (privs or {}).items()}
            for path, privs in (data or {}).items()
        }

    # -- cached reads ---------------------------------------------------------------------------

    async def _get_mappings(self, unobserved: list[str]) -> tuple[PciMapping, ...]:
        """The mappings; on failure the last good copy, and ``"mappings"`` in ``unobserved``."""
        if self._mappings is not None and self._fresh(self._mappings):
            return self._mappings.value
        try:
            data = await self._client.get("/cluster/mapping/pci")
        except ProvisiondError as exc:
            log.warning("observe_failed", what="cluster/mapping/pci", error=str(exc))
            unobserved.append("mappings")
            return self._mappings.value if self._mappings else ()
        value = tuple(sorted((_mapping(m) for m in data or []), key=lambda m: m.id))
        self._mappings = _Cached(value, self._clock())
        return value

    async def _get_storages(
        self, node: str, phase: float, unobserved: list[str]
    ) -> tuple[Storage, ...]:
        cached = self._storages.get(node)
        if self._fresh(cached, phase=phase):
            assert cached is not None
            return cached.value
        try:
            data = await self._client.get("/nodes/{node}/storage", node=node)
        except ProvisiondError as exc:
            log.warning("observe_failed", what="storage", host=node, error=str(exc))
            unobserved.append("storage")
            return cached.value if cached else ()
        value = tuple(
            sorted(
                (
                    Storage(
                        name=str(s["storage"]),
                        shared=_pve_bool(s.get("shared", 0)),
                        active=_pve_bool(s.get("active", 1)) and _pve_bool(s.get("enabled", 1)),
                        avail_bytes=int(s["avail"]) if s.get("avail") is not None else None,
                    )
                    for s in data or []
                ),
                key=lambda s: s.name,
            )
        )
        self._storages[node] = _Cached(value, self._clock())
        return value

    async def _get_pci(
        self, node: str, phase: float, unobserved: list[str]
    ) -> tuple[PciDevice, ...]:
        cached = self._pci.get(node)
        if self._fresh(cached, phase=phase):
            assert cached is not None
            return cached.value
        try:
            data = await self._client.get("/nodes/{node}/hardware/pci", node=node)
        except AuthError as exc:
            # Needs Sys.Audit on / (a pool-scoped token has none). The list is informational —
            # GPU capacity comes from the mappings — so "not for this token" is an answer,
            # cached like one, not a failed read that would keep every cycle unconverged.
            log.info("pci_list_not_permitted", host=node, error=str(exc))
            self._pci[node] = _Cached((), self._clock())
            return ()
        except ProvisiondError as exc:
            log.warning("observe_failed", what="hardware/pci", host=node, error=str(exc))
            unobserved.append("pci")
            return cached.value if cached else ()
        value = tuple(
            PciDevice(
                path=str(d["id"]),
                device_id=f"{str(d.get('vendor', '')).removeprefix('0x')}:"
                f"{str(d.get('device', '')).removeprefix('0x')}",
                name=str(d.get("device_name", "")),
            )
            for d in data or []
        )
        self._pci[node] = _Cached(value, self._clock())
        return value

    async def _get_config(self, item: Mapping[str, Any], failed: list[int]) -> Configs:
        cached = self._configs.fresh(item)
        if cached is not None:
            return cached
        vmid = int(item["vmid"])
        try:
            data = await self._client.get(
                "/nodes/{node}/qemu/{vmid}/pending", node=str(item["node"]), vmid=vmid
            )
        except ProvisiondError as exc:
            log.warning("observe_failed", what="vm config", vmid=vmid, error=str(exc))
            failed.append(vmid)
            return self._configs.last(vmid) or (None, None)
        value = _configs_from_pending(list(data or []))
        # Foreign by core's own rule (tags from the resource entry, the clone's marker in the
        # description just read); templates count as owned: fleets clone from them.
        vm = self._vm(item, value)
        self._configs.store(item, value, foreign=not vm.template and owner(vm) is None)
        return value

    # -- the snapshot ---------------------------------------------------------------------------

    def _vm(
        self, item: Mapping[str, Any], configs: tuple[VMConfig | None, VMConfig | None]
    ) -> ObservedVM:
        config, pending = configs
        return ObservedVM(
            vmid=int(item["vmid"]),
            name=str(item.get("name", f"VM {item['vmid']}")),
            host=str(item["node"]),
            status=_STATUSES.get(str(item.get("status")), VMStatus.UNKNOWN),
            cores=int(item.get("maxcpu", 0) or 0),
            memory_mib=int(item.get("maxmem", 0) or 0) // MIB,
            template=_pve_bool(item.get("template", 0)),
            lock=str(item["lock"]) if item.get("lock") else None,
            tags=parse_tags(str(item.get("tags", ""))),
            config=config,
            pending=pending,
            ha_state=str(item["hastate"]) if item.get("hastate") else None,
            uptime=int(item["uptime"]) if item.get("uptime") is not None else None,
        )

    async def observe(self) -> ObservedState:
        tasks_unobserved = False
        # what failed, per read: "mappings"; per host: "storage", "pci" (typed in Unobserved)
        mappings_failed: list[str] = []
        try:
            resources = await self._resources()
        except ACCESS_ERRORS:
            raise  # Proxmox cannot be talked to at all: not a partial view, the caller decides
        except ProvisiondError as exc:
            log.warning("observe_failed", what="cluster/resources", error=str(exc))
            return ObservedState(
                unobserved=Unobserved(lists=("cluster/resources",)), self_vmid=self._self_vmid
            )
        try:
            tasks = await self.active_tasks()
        except ProvisiondError as exc:
            log.warning("observe_failed", what="cluster/tasks", error=str(exc))
            tasks_unobserved = True
            tasks = ()

        nodes = sorted(
            (r for r in resources if r.get("type") == "node"), key=lambda r: str(r["node"])
        )
        online = {str(n["node"]) for n in nodes if n.get("status") == "online"}
        offline = tuple(sorted(str(n["node"]) for n in nodes if str(n["node"]) not in online))
        vm_items = sorted(
            (r for r in resources if r.get("type") == "qemu"), key=lambda r: int(r["vmid"])
        )
        self._configs.keep(int(r["vmid"]) for r in vm_items)

        failed: list[int] = []
        host_failed: dict[str, list[str]] = {str(n["node"]): [] for n in nodes}
        mappings_task = self._get_mappings(mappings_failed)
        # A host's phase is its rank among all the cluster's hosts (offline ones too, so a host
        # going down shifts none): evenly spread whatever the names. A host joining or leaving
        # shifts the others by less than cache_ttl / hosts, once.
        phases = {str(n["node"]): i / len(nodes) for i, n in enumerate(nodes)}
        storage_tasks = [
            self._get_storages(str(n["node"]), phases[str(n["node"])], host_failed[str(n["node"])])
            for n in nodes
            if str(n["node"]) in online
        ]
        pci_tasks = [
            self._get_pci(str(n["node"]), phases[str(n["node"])], host_failed[str(n["node"])])
            for n in nodes
            if str(n["node"]) in online
        ]
        config_tasks = [self._get_config(r, failed) for r in vm_items if str(r["node"]) in online]
        mappings, storages, pcis, configs, ha = await asyncio.gather(
            mappings_task,
            asyncio.gather(*storage_tasks),
            asyncio.gather(*pci_tasks),
            asyncio.gather(*config_tasks),
            self._ha.read(),
        )

        online_nodes = [n for n in nodes if str(n["node"]) in online]
        by_node_storage = {str(n["node"]): s for n, s in zip(online_nodes, storages, strict=True)}
        by_node_pci = {str(n["node"]): p for n, p in zip(online_nodes, pcis, strict=True)}
        hosts = tuple(
            Host(
                name=str(n["node"]),
                online=str(n["node"]) in online,
                cpus=int(n.get("maxcpu", 0) or 0),
                memory_mib=int(n.get("maxmem", 0) or 0) // MIB,
                storages=by_node_storage.get(str(n["node"]), ()),
                pci_devices=by_node_pci.get(str(n["node"]), ()),
                maintenance=str(n["node"]) in ha.maintenance,
            )
            for n in nodes
        )
        online_vms = iter(configs)
        vms: list[ObservedVM] = []
        offline_configs: list[int] = []
        for item in vm_items:
            if str(item["node"]) in online:
                vms.append(self._vm(item, next(online_vms)))
            else:
                last = self._configs.last(int(item["vmid"]))
                if last is None:
                    offline_configs.append(int(item["vmid"]))
                vms.append(self._vm(item, last or (None, None)))
        return ObservedState(
            hosts=hosts,
            mappings=mappings,
            vms=tuple(vms),
            tasks=tasks,
            kube=None,
            unobserved=Unobserved(
                storage=tuple(h for h, what in host_failed.items() if "storage" in what),
                pci=tuple(h for h, what in host_failed.items() if "pci" in what),
                mappings=bool(mappings_failed),
                tasks=tasks_unobserved,
                offline_hosts=offline,
                vm_configs=tuple(sorted(failed + offline_configs)),
            ),
            self_vmid=self._self_vmid,
            ha=ha,
        )
