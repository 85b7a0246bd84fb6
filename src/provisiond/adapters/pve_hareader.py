"""PVE 9.x HA rules, the ``crs`` datacenter option and HA node maintenance, read for the planner
(``core.hacluster``).

One cached read per refresh period (``cache_ttl``; so an HA maintenance is seen at most that
late): ``GET /cluster/ha/rules`` then, when that answered, ``GET /cluster/options``; and
``GET /cluster/ha/status/manager_status`` (8.x and 9.x). Maintenance comes from the CRM's
``manager_status``: a node whose ``node_status`` is ``maintenance`` (its LRM entered the mode)
or that has ``node_request.<node>.maintenance`` set (``ha-manager crm-command node-maintenance
enable`` was taken; the LRM follows within a round) — structured fields, where
``/cluster/ha/status/current`` only says ``maintenance mode`` inside an ``lrm`` entry's status
text. An empty ``manager_status`` (no CRM ever active: no HA in use) means no maintenance. A
403 (no ``Sys.Audit`` on ``/``) is logged once and means "none seen"; another failure keeps the
last known set and is retried on the next cycle. A rule written by the executor
(``invalidate``) makes the next cycle read again. ``rules`` is the executor's fresh, uncached
read before a rule write. What the rules answers mean:
- rules answer: PVE 9.x and the token has ``Sys.Audit`` on ``/``; enabled, feasible rules (PVE
  drops a rule its checks reject — the API lists it with ``errors``) on ``vm:`` resources become
  ``NodeAffinity`` / ``ResourceAffinity``; ``crs`` decides ``auto_rebalance`` (on only with
  ``ha=static|dynamic``, as ``PVE::HA::Manager::load_balance`` requires);
- 501 ``not implemented``: PVE 8.x — no rules, no auto-rebalance (HA groups are not read: the
  planner never used them);
- 403: the token lacks ``Sys.Audit`` on ``/`` — rules unseen and the options would come back
  without ``crs``: logged once, ``auto_rebalance=None`` ("may be on");
- any other failure: the last good answer is kept (``rules_unread`` when there is none) and the
  read is retried on the next cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import structlog

from provisiond.core.errors import AuthError, ProvisiondError
from provisiond.core.hacluster import HaCluster, HaRule, NodeAffinity, ResourceAffinity

log = structlog.get_logger(__name__)


class _Reader(Protocol):
    async def get(
        self, template: str, /, params: Mapping[str, Any] | None = None, **path: str | int
    ) -> Any: ...


def _vmids(value: object) -> frozenset[int]:
    out = set()
    for part in str(value or "").replace(";", ",").split(","):
        kind, _, name = part.strip().partition(":")
        if kind == "vm" and name.isdigit():
            out.add(int(name))
    return frozenset(out)


def _nodes(value: object) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in str(value or "").replace(";", ",").split(","):
        node, _, pri = part.strip().partition(":")
        if node:
            out[node] = int(pri) if pri.isdigit() else 0
    return out


def _flag(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _crs(value: object) -> dict[str, str]:
    """``crs`` as an object (PVE's parsed datacenter.cfg) or as its property string."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for part in str(value or "").split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
        elif key.strip():
            out["ha"] = key.strip()  # the default key
    return out


def rule_of(raw: Mapping[str, Any]) -> HaRule:
    """One listed rule as a value (what publishing compares), whatever its state."""
    affinity = raw.get("affinity")
    return HaRule(
        rule=str(raw.get("rule", "")),
        type=str(raw.get("type", "")),
        vmids=_vmids(raw.get("resources")),
        nodes=tuple(sorted(_nodes(raw.get("nodes")).items())),
        strict=_flag(raw.get("strict", 0)),
        affinity=str(affinity) if affinity is not None else None,
        comment=str(raw.get("comment") or ""),
        disabled=_flag(raw.get("disable", 0)),
        digest=str(raw["digest"]) if raw.get("digest") is not None else None,
    )


def parse(rules: list[Mapping[str, Any]], options: Mapping[str, Any]) -> HaCluster:
    node_affinity = []
    resource_affinity = []
    for raw in rules:
        if _flag(raw.get("disable", 0)) or raw.get("errors"):
            continue
        vmids = _vmids(raw.get("resources"))
        if not vmids:
            continue
        rule = str(raw.get("rule", ""))
        if raw.get("type") == "node-affinity":
            strict = _flag(raw.get("strict", 0))
            node_affinity.append(NodeAffinity(rule, vmids, _nodes(raw.get("nodes")), strict))
        elif raw.get("type") == "resource-affinity":
            positive = raw.get("affinity") == "positive"
            resource_affinity.append(ResourceAffinity(rule, vmids, positive))
    crs = _crs(options.get("crs"))
    auto = _flag(crs.get("ha-auto-rebalance", 0)) and crs.get("ha") in ("static", "dynamic")
    return HaCluster(
        tuple(node_affinity),
        tuple(resource_affinity),
        auto_rebalance=auto,
        rules_api=True,
        rules=tuple(rule_of(raw) for raw in rules),
    )


def maintenance(status: Mapping[str, Any]) -> frozenset[str]:
    """The nodes in (or requested into) HA maintenance, from ``manager_status``'s answer."""
    manager = status.get("manager_status") or {}
    states = manager.get("node_status") or {}
    requests = manager.get("node_request") or {}
    entered = {str(n) for n, state in states.items() if state == "maintenance"}
    requested = {
        str(n)
        for n, req in requests.items()
        if isinstance(req, Mapping) and _flag(req.get("maintenance", 0))
    }
    return frozenset(entered | requested)


class HaReader:
    """The cached read; ``read`` never raises a read failure (it is reported in the result)."""

    def __init__(
        self,
        client: _Reader,
        *,
        cache_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = cache_ttl
        self._clock = clock
        self._value: HaCluster | None = None
        self._at = 0.0
        self._warned = False
        self._status_warned = False

    def invalidate(self) -> None:
        """A rule was written: the next ``read`` asks PVE again (the last answer stays the
        fallback should that read fail)."""
        self._at = float("-inf")

    async def rules(self) -> tuple[HaRule, ...]:
        """Every rule, read now (``GET /cluster/ha/rules``: one request, uncached); raises."""
        return tuple(rule_of(raw) for raw in await self._client.get("/cluster/ha/rules") or [])

    async def read(self) -> HaCluster:
        now = self._clock()
        if self._value is not None and now - self._at < self._ttl:
            return self._value
        rules, keep = await self._rules()
        nodes = await self._maintenance()
        if nodes is None:  # not read: the last known set, and read again next cycle
            nodes = self._value.maintenance if self._value is not None else frozenset()
            keep = False
        value = replace(rules, maintenance=nodes)
        if keep:
            self._value, self._at = value, now
        return value

    async def _maintenance(self) -> frozenset[str] | None:
        try:
            status = await self._client.get("/cluster/ha/status/manager_status")
        except AuthError as exc:
            if "403" not in str(exc):
                raise
            if not self._status_warned:
                self._status_warned = True
                log.warning(
                    "ha_status_unreadable",
                    reason="the token lacks Sys.Audit on /: Proxmox HA node maintenance is not "
                    "seen (policy.maintenance still evacuates)",
                )
            return frozenset()
        except ProvisiondError as exc:
            log.warning("observe_failed", what="cluster/ha/status/manager_status", error=str(exc))
            return None
        return maintenance(status if isinstance(status, Mapping) else {})

    async def _rules(self) -> tuple[HaCluster, bool]:
        """The rules and options, and whether the answer is one to keep for ``cache_ttl``."""
        try:
            rules = await self._client.get("/cluster/ha/rules")
            options = await self._client.get("/cluster/options")
        except AuthError as exc:
            if "403" not in str(exc):
                raise  # 401: the token itself is refused (not a missing privilege)
            if not self._warned:
                self._warned = True
                log.warning(
                    "ha_rules_unreadable",
                    reason="the token lacks Sys.Audit on /: PVE HA rules and the crs option "
                    "are not seen; assuming the CRS auto-rebalance may be on",
                )
            return HaCluster(auto_rebalance=None, rules_unread=True), True
        except ProvisiondError as exc:
            if "not implemented" in str(exc):  # PVE 8.x: no /cluster/ha/rules
                return HaCluster(), True
            log.warning("observe_failed", what="cluster/ha/rules", error=str(exc))
            return self._value or HaCluster(auto_rebalance=None, rules_unread=True), False
        return parse(list(rules or []), options or {}), True
