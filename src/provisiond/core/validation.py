"""Semantic checks of fleet documents: everything a single field cannot tell on its own.

``check(docs)`` runs every check over every document and returns *all* problems as
``SpecIssue`` values (file, line of the offending value, field path, message) — it never stops
at the first. The pydantic models in ``core.spec`` have already checked types and formats.

Checked here:
- per level (defaults, pool, VM): ``template`` xor ``templateVmid``; ``nics`` xor the net0
  shorthand; Kubernetes label keys/values, annotation keys, taints and node names exactly as
  the API server validates them; reserved tags; duplicate disk slots;
- per pool: ``vms`` xor ``count`` + ``namePattern`` + ``vmidRange``; a usable ``namePattern``; a
  ``vmidRange`` large enough for ``count``; unique pool names; strict spread that the allowed
  hosts (and pins) can satisfy;
- per VM after merging: a template, cores and memory are set; the gateway fits the IP; a pinned
  host is an allowed host;
- across all fleets: unique fleet names, VM names, VMIDs, MACs, IPs and Kubernetes node names;
  an empty fleet is refused unless ``policy.allowEmpty``;
- sizes (``core.limits``): VMs per pool and in total, from ``count`` and the ``vms`` lists —
  *before* any pool is expanded; beyond a limit only the limits and fleet names are reported,
  so a ``count: 900000000`` costs nothing;
- when the caller knows the fleet's cluster (``cluster_of``, from topology documents): values
  no host or storage could ever hold (``core.hostbounds``).

Pure: the caller supplies ``SourcedFleet.locate`` to turn a path into a line.
"""

from __future__ import annotations

import ipaddress
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from provisiond.core.desired import OWNER_TAG
from provisiond.core.errors import SpecIssue
from provisiond.core.hostbounds import ClusterBounds, check_member
from provisiond.core.kubesyntax import (
    check_annotations_size,
    check_dns1123_subdomain,
    check_label_value,
    check_qualified_name,
    parse_taint,
)
from provisiond.core.limits import DEFAULT_LIMITS, SpecLimits
from provisiond.core.members import Level, Member, expand, pool_name_at
from provisiond.core.spec import (
    DNS_NAME_RE,
    Fleet,
    Path,
    Pool,
    SourcedFleet,
    VmSettings,
    format_path,
)
from provisiond.core.units import size_to_mib

_SHORTHAND = ("bridge", "vlan", "mac", "nic_model")
_SHORTHAND_ALIASES = {"bridge": "bridge", "vlan": "vlan", "mac": "mac", "nic_model": "nicModel"}


@dataclass
class _Report:
    """Collects issues for one document."""

    doc: SourcedFleet
    issues: list[SpecIssue] = field(default_factory=list)

    def add(self, path: Path, message: str) -> None:
        self.issues.append(
            SpecIssue(self.doc.file, self.doc.locate(path), format_path(path), message)
        )

    def where(self, path: Path) -> str:
        line = self.doc.locate(path)
        return f"{self.doc.file}:{line}" if line is not None else self.doc.file


def _no_cluster(_doc: SourcedFleet) -> ClusterBounds | None:
    return None


def check(
    docs: Sequence[SourcedFleet],
    *,
    limits: SpecLimits = DEFAULT_LIMITS,
    cluster_of: Callable[[SourcedFleet], ClusterBounds | None] = _no_cluster,
) -> list[SpecIssue]:
    """Every semantic problem of ``docs`` (empty = valid), in document and line order."""
    reports = [_Report(doc) for doc in docs]
    members: list[tuple[_Report, Member]] = []
    if _within_limits(reports, limits):
        for report in reports:
            fleet = report.doc.fleet
            fleet_members = expand(fleet)
            _check_fleet(report, fleet, fleet_members)
            bounds = cluster_of(report.doc)
            if bounds is not None:
                _check_bounds(report, fleet, fleet_members, bounds)
            members.extend((report, m) for m in fleet_members)
    _check_fleet_names(reports)
    _check_unique(members)
    out: list[SpecIssue] = []
    for report in reports:
        out.extend(sorted(report.issues, key=lambda i: (i.line or 0, i.path)))
    return out


# --- sizes --------------------------------------------------------------------------------------


def _pool_size(pool: Pool) -> tuple[int, str]:
    """How many VMs ``pool`` declares (what ``expand`` would yield at most), and which key."""
    if pool.vms is not None:
        return len(pool.vms), "vms"
    return pool.count or 0, "count"


def _within_limits(reports: list[_Report], limits: SpecLimits) -> bool:
    ok = True
    sizes: list[tuple[_Report, Path, int]] = []
    for report in reports:
        for p, pool in enumerate(report.doc.fleet.spec.pools):
            n, key = _pool_size(pool)
            path: Path = ("spec", "pools", p, key)
            sizes.append((report, path, n))
            if n > limits.max_vms_per_pool:
                ok = False
                report.add(
                    path,
                    f"pool {pool.name!r} declares {n} VMs, more than the {limits.max_vms_per_pool}"
                    " a pool may have (docs/fleet-spec.md, Limits)",
                )
    total = sum(n for _r, _p, n in sizes)
    if ok and total > limits.max_vms:
        ok = False
        running = list(accumulate(n for _r, _p, n in sizes))
        crossing = next(i for i, r in enumerate(running) if r > limits.max_vms)
        report, path, n = sizes[crossing]  # point at the pool that crosses the limit
        report.add(
            path,
            f"the fleets declare {total} VMs in total, more than the {limits.max_vms} "
            f"provisiond manages (docs/fleet-spec.md, Limits); VMs 1-{running[crossing] - n} come "
            "before this pool",
        )
    return ok


def _check_bounds(
    report: _Report, fleet: Fleet, members: tuple[Member, ...], bounds: ClusterBounds
) -> None:
    reported: set[tuple[Path, str]] = set()
    for m in members:
        pool = fleet.spec.pools[m.pool_index]
        own = pool.placement.hosts if pool.placement is not None else None
        allowed = own if own is not None else fleet.spec.placement.hosts
        for path, message in check_member(
            m, bounds, allowed=allowed, memory_overcommit=fleet.spec.policy.overcommit.memory
        ):
            if (path, message) not in reported:  # a pool-level value: once, not once per VM
                reported.add((path, message))
                report.add(path, message)


# --- one fleet ----------------------------------------------------------------------------------


def _check_fleet(report: _Report, fleet: Fleet, members: tuple[Member, ...]) -> None:
    spec = fleet.spec
    _check_level(report, Level(("spec", "defaults"), spec.defaults))
    if spec.placement.hosts is not None and not spec.placement.hosts:
        report.add(
            ("spec", "placement", "hosts"), "no host is allowed; omit hosts to allow every host"
        )
    seen_pools: dict[str, int] = {}
    for p, pool in enumerate(spec.pools):
        path: Path = ("spec", "pools", p)
        if pool.name in seen_pools:
            report.add(
                (*path, "name"),
                f"duplicate pool name {pool.name!r} (also spec.pools[{seen_pools[pool.name]}])",
            )
        seen_pools.setdefault(pool.name, p)
        _check_level(report, Level(path, pool))
        for v, entry in enumerate(pool.vms or ()):
            _check_level(report, Level((*path, "vms", v), entry))
        _check_pool_shape(report, path, pool)
        _check_spread(report, fleet, path, pool, [m for m in members if m.pool_index == p])
    for member in members:
        _check_member(report, member)
    if not members and not spec.policy.allow_empty:
        report.add(
            ("spec", "pools"),
            f"fleet {fleet.metadata.name!r} declares no VMs; an empty fleet is refused unless "
            "policy.allowEmpty is true (it would leave every VM of the fleet unmanaged)",
        )


def _check_level(report: _Report, level: Level) -> None:
    s, path = level.settings, level.path
    if s.template is not None and s.template_vmid is not None:
        report.add(
            (*path, "templateVmid"),
            f"template is given both by name ({s.template!r}) and by VMID ({s.template_vmid}); "
            "keep one of template and templateVmid",
        )
    if s.nics is not None:
        for name in _SHORTHAND:
            if getattr(s, name) is not None:
                report.add(
                    (*path, _SHORTHAND_ALIASES[name]),
                    f"{_SHORTHAND_ALIASES[name]} is the net0 shorthand and cannot be combined "
                    "with nics; move it into nics[0]",
                )
    for t, tag in enumerate(s.tags or ()):
        if tag == OWNER_TAG or tag.startswith("pd-"):
            report.add(
                (*path, "tags", t),
                f"tag {tag!r} is reserved: provisiond sets 'provisiond' and 'pd-*' tags itself",
            )
    seen_slots: set[str] = set()
    for d, disk in enumerate(s.disks or ()):
        if disk.slot in seen_slots:
            report.add((*path, "disks", d, "slot"), f"disk slot {disk.slot!r} appears twice")
        seen_slots.add(disk.slot)
    _check_kubernetes(report, (*path, "kubernetes"), s)


def _check_kubernetes(report: _Report, path: Path, s: VmSettings) -> None:
    k = s.kubernetes
    if k is None:
        return
    if k.node_name is not None:
        for msg in check_dns1123_subdomain(k.node_name):
            report.add((*path, "nodeName"), f"node name {k.node_name!r}: {msg}")
    for key, value in (k.labels or {}).items():
        for msg in check_qualified_name(key):
            report.add((*path, "labels", key), f"label key {key!r}: {msg}")
        for msg in check_label_value(value):
            report.add((*path, "labels", key), f"label value {value!r}: {msg}")
    for t, text in enumerate(k.taints or ()):
        _taint, errs = parse_taint(text)
        for msg in errs:
            report.add((*path, "taints", t), msg)
    annotations = k.annotations or {}
    for key in annotations:
        for msg in check_qualified_name(key):
            report.add((*path, "annotations", key), f"annotation key {key!r}: {msg}")
    for msg in check_annotations_size(annotations):
        report.add((*path, "annotations"), f"annotations {msg}")


def _check_pool_shape(report: _Report, path: Path, pool: Pool) -> None:
    if pool.vms is not None:
        if pool.count is not None:
            report.add(
                (*path, "count"),
                "a pool lists either vms or count (with namePattern and vmidRange), not both",
            )
        for key, value in (("namePattern", pool.name_pattern), ("vmidRange", pool.vmid_range)):
            if value is not None:
                report.add((*path, key), f"{key} goes with count; a pool with vms lists each VM")
        return
    if pool.count is None:
        report.add(
            path,
            f"pool {pool.name!r} has no VMs: give vms (a list of name + vmid) or count with "
            "namePattern and vmidRange",
        )
        return
    if pool.name_pattern is None:
        report.add((*path, "count"), "count needs namePattern (e.g. 'worker{index:02d}')")
    else:
        _check_name_pattern(report, (*path, "namePattern"), pool)
    if pool.vmid_range is None:
        report.add((*path, "count"), "count needs vmidRange {start, end}: VMIDs are never guessed")
        return
    start, end = pool.vmid_range.start, pool.vmid_range.end
    if end < start:
        report.add((*path, "vmidRange", "end"), f"vmidRange end {end} is below its start {start}")
    elif end - start + 1 < pool.count:
        report.add(
            (*path, "vmidRange", "end"),
            f"vmidRange {start}-{end} holds {end - start + 1} VMIDs but count is {pool.count}; "
            f"raise end to at least {start + pool.count - 1}",
        )


def _check_name_pattern(report: _Report, path: Path, pool: Pool) -> None:
    pattern = pool.name_pattern or ""
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        report.add(path, f"namePattern {pattern!r} is not a valid pattern: {exc}")
        return
    fields = [f for _text, f, _spec, _conv in parsed if f is not None]
    if fields.count("index") != len(fields) or not fields:
        report.add(
            path,
            f"namePattern {pattern!r} must use {{index}} (1-based, format spec allowed, e.g. "
            "'node{index:02d}') and no other field",
        )
        return
    for i in range(1, (pool.count or 0) + 1):
        name = pool_name_at(pool, i)
        if name is None:
            report.add(path, f"namePattern {pattern!r} cannot format index {i}")
            return
        if not DNS_NAME_RE.match(name) or len(name) > 63:
            report.add(
                path,
                f"namePattern {pattern!r} gives {name!r}, not a valid VM name (letters, digits "
                "and '-', at most 63 characters)",
            )
            return


def _check_spread(
    report: _Report, fleet: Fleet, path: Path, pool: Pool, members: list[Member]
) -> None:
    own = pool.placement
    fleet_placement = fleet.spec.placement
    spread_path: Path = ("spec", "placement", "spread")
    spread = fleet_placement.spread
    if own is not None and own.spread is not None:
        spread, spread_path = own.spread, (*path, "placement", "spread")
    hosts = fleet_placement.hosts
    hosts_text = "spec.placement.hosts"
    if own is not None and own.hosts is not None:
        hosts, hosts_text = own.hosts, f"{format_path(path)}.placement.hosts"
        if not own.hosts:
            report.add(
                (*path, "placement", "hosts"),
                "no host is allowed; omit hosts to inherit spec.placement.hosts",
            )
    for member in members:
        host = member.settings.host
        if hosts and host is not None and host not in hosts:
            report.add(
                member.origin("host"),
                f"{member.name} is pinned to {host!r}, which {hosts_text} does not allow "
                f"({', '.join(hosts)})",
            )
    if spread != "strict":
        return
    if hosts and len(members) > len(set(hosts)):
        report.add(
            spread_path,
            f"strict spread puts each of the {len(members)} VMs of pool {pool.name!r} on its own "
            f"host, but {hosts_text} allows only {len(set(hosts))} ({', '.join(hosts)}); add "
            "hosts or use spread: preferred",
        )
    pinned: dict[str, str] = {}
    for member in members:
        host = member.settings.host
        if host is None:
            continue
        if host in pinned:
            report.add(
                member.origin("host"),
                f"strict spread: {member.name} and {pinned[host]} of pool {pool.name!r} are both "
                f"pinned to {host!r}",
            )
        pinned.setdefault(host, member.name)


def _check_member(report: _Report, m: Member) -> None:
    if m.generated and m.index > 1:
        return  # generated members share their settings: one report per pool, not per member
    s = m.settings
    where = "in spec.defaults, the pool or the VM"
    if s.template is None and s.template_vmid is None:
        report.add(m.path, f"{m.name} has no template: set template (a template's name) {where}")
    if s.cores is None:
        report.add(m.path, f"{m.name} has no cores: set cores {where}")
    if s.memory is None:
        report.add(m.path, f"{m.name} has no memory: set memory (e.g. '16GiB') {where}")
    else:
        try:
            size_to_mib(s.memory)
        except ValueError as exc:
            report.add(m.origin("memory"), str(exc))
    if s.nics is not None:
        for name in _SHORTHAND:
            if getattr(s, name) is not None and m.origin(name)[:-1] != m.origin("nics")[:-1]:
                report.add(
                    m.origin(name),
                    f"{m.name} gets nics from {format_path(m.origin('nics'))} and the net0 "
                    f"shorthand {_SHORTHAND_ALIASES[name]} from here; use one of them",
                )
    elif s.bridge is None:
        for name in ("vlan", "mac", "nic_model"):
            if getattr(s, name) is not None:
                report.add(
                    m.origin(name),
                    f"{m.name} sets {_SHORTHAND_ALIASES[name]} but no bridge for net0; "
                    "set bridge (e.g. vmbr0)",
                )
    _check_ipconfig(report, m)
    k = s.kubernetes
    if (k is None or k.node is not False) and (k is None or k.node_name is None):
        for msg in check_dns1123_subdomain(m.name):
            report.add(
                m.origin("kubernetes") if k is not None else m.path,
                f"{m.name} is a Kubernetes node and its name is the node name: {msg}; set "
                "kubernetes.nodeName or kubernetes.node: false",
            )


def _check_ipconfig(report: _Report, m: Member) -> None:
    s = m.settings
    if s.gateway is None:
        return
    if s.ip is None:
        report.add(m.origin("gateway"), f"{m.name} has a gateway but no ip")
    elif s.ip == "dhcp":
        report.add(m.origin("gateway"), f"{m.name} uses dhcp: a gateway cannot be given with it")
    else:
        network = ipaddress.IPv4Interface(s.ip).network
        if ipaddress.IPv4Address(s.gateway) not in network:
            report.add(
                m.origin("gateway"),
                f"gateway {s.gateway} is outside {m.name}'s network {network} (ip {s.ip})",
            )


# --- across fleets ------------------------------------------------------------------------------


def _check_fleet_names(reports: list[_Report]) -> None:
    seen: dict[str, _Report] = {}
    for report in reports:
        name = report.doc.fleet.metadata.name
        path: Path = ("metadata", "name")
        if name in seen:
            report.add(path, f"duplicate fleet name {name!r}: also in {seen[name].where(path)}")
        seen.setdefault(name, report)


def _check_unique(members: list[tuple[_Report, Member]]) -> None:
    kinds: dict[str, dict[str, tuple[_Report, Member, Path]]] = {
        "VM name": {},
        "VMID": {},
        "MAC": {},
        "IP": {},
        "Kubernetes node name": {},
    }
    reported: set[tuple[int, Path]] = set()
    for report, m in members:
        for kind, value, path in _identities(m):
            seen = kinds[kind]
            if value not in seen:
                seen[value] = (report, m, path)
                continue
            key = (id(report), path)
            if m.generated and key in reported:
                continue  # one message per pool-level value, not one per generated member
            reported.add(key)
            first_report, first, first_path = seen[value]
            report.add(
                path,
                f"duplicate {kind} {value}: {m.name} and {first.name} (fleet "
                f"{first_report.doc.fleet.metadata.name}, {first_report.where(first_path)}) "
                "both have it",
            )


def _identities(m: Member) -> list[tuple[str, str, Path]]:
    s = m.settings
    name_path: Path = (*m.path, "namePattern" if m.generated else "name")
    vmid_path: Path = (*m.path, "vmidRange" if m.generated else "vmid")
    out: list[tuple[str, str, Path]] = [
        ("VM name", m.name, name_path),
        ("VMID", str(m.vmid), vmid_path),
    ]
    if s.mac is not None and s.nics is None:
        out.append(("MAC", s.mac.upper(), m.origin("mac")))
    for n, nic in enumerate(s.nics or ()):
        if nic.mac is not None:
            out.append(("MAC", nic.mac.upper(), (*m.origin("nics"), n, "mac")))
    if s.ip is not None and s.ip != "dhcp":
        out.append(("IP", str(ipaddress.IPv4Interface(s.ip).ip), m.origin("ip")))
    k = s.kubernetes
    if k is None or k.node is not False:
        node = k.node_name if k is not None and k.node_name is not None else m.name
        where = _node_name_origin(m) or name_path
        out.append(("Kubernetes node name", node, where))
    return out


def _node_name_origin(m: Member) -> Path | None:
    for level in reversed(m.levels):
        k = level.settings.kubernetes
        if k is not None and k.node_name is not None:
            return (*level.path, "kubernetes", "nodeName")
    return None
