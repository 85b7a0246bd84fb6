"""PVE 9.x HA rules (``/cluster/ha/rules`` CRUD), the datacenter options (``crs``) and the
deprecated HA groups list.

Texts and checks from pve-ha-manager's ``PVE::API2::HA::Rules``: create refuses an existing id
(``HA rule '<id>' already defined``), unmanaged resources (``cannot use unmanaged resource(s)
vm:<id>.``) and unknown nodes (``cannot use non-existent node(s) <n>.``); update refuses a missing
rule (``HA rule '<id>' does not exist``); delete of a missing rule succeeds silently; a rule the
feasibility checks reject is a 400 ``Rule '<id>' is invalid.`` with the per-option reasons.
``disable=0`` is not stored. ``GET /cluster/options`` answers only ``console``, ``tag-style`` and
``allowed-tags`` without ``Sys.Audit`` on ``/`` (pve-manager ``API2::Cluster::get_options``).
"""

from __future__ import annotations

import hashlib
import json

from provisiond.sim.pve.errors import ParamError, PveError
from provisiond.sim.pve.hamanager import parse_nodes, parse_resources
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.state import Cluster, Value

_TYPE_KEYS = {
    "node-affinity": frozenset({"nodes", "strict"}),
    "resource-affinity": frozenset({"affinity"}),
}
_KEYS = ("comment", "disable", "nodes", "strict", "affinity", "resources")


def _digest(cluster: Cluster) -> str:
    text = json.dumps(cluster.ha_rules, sort_keys=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _api_rule(cluster: Cluster, rule_id: str, order: int) -> dict[str, object]:
    rule = cluster.ha_rules[rule_id]
    return {**rule, "rule": rule_id, "digest": _digest(cluster), "order": order}


async def list_rules(call: Call) -> object:
    cluster = call.cluster
    kind = call.get_str("type")
    resource = call.get_str("resource")
    out = []
    for order, (rule_id, rule) in enumerate(sorted(cluster.ha_rules.items()), start=1):
        if kind is not None and rule["type"] != kind:
            continue
        if resource is not None and resource not in str(rule["resources"]).split(","):
            continue
        out.append(_api_rule(cluster, rule_id, order))
    return out


async def get_rule(call: Call) -> object:
    cluster = call.cluster
    rule_id = str(call.params["rule"])
    if rule_id not in cluster.ha_rules:
        raise PveError(f"no such ha rule '{rule_id}'")
    order = sorted(cluster.ha_rules).index(rule_id) + 1
    return _api_rule(cluster, rule_id, order)


def _checked(cluster: Cluster, kind: str, params: dict[str, Value]) -> dict[str, Value]:
    """The rule's options of its type (others refused), resources and nodes verified."""
    foreign = {
        k for k in params if k in {"nodes", "strict", "affinity"} and k not in _TYPE_KEYS[kind]
    }
    if foreign:
        raise ParamError(dict.fromkeys(foreign, f"property is not defined for type '{kind}'"))
    opts = {k: params[k] for k in _KEYS if k in params}
    if not opts.get("disable"):
        opts.pop("disable", None)
    if "resources" in opts:
        vmids = parse_resources(str(opts["resources"]))
        if not vmids:
            raise PveError("no resources were specified")
        unmanaged = [
            f"vm:{v}" for v in vmids if v not in cluster.vms or cluster.vms[v].hastate is None
        ]
        if unmanaged:
            raise PveError(f"cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
        opts["resources"] = ",".join(f"vm:{v}" for v in sorted(vmids))
    if "nodes" in opts:
        nodes = parse_nodes(str(opts["nodes"]))
        if not nodes:
            raise PveError("no nodes were specified")
        missing = [n for n in sorted(nodes) if n not in cluster.nodes]
        if missing:
            raise PveError(f"cannot use non-existent node(s) {', '.join(missing)}.")
        opts["nodes"] = ",".join(f"{n}:{p}" if p else n for n, p in sorted(nodes.items()))
    return opts


def _assert_feasible(cluster: Cluster, rules: dict[str, dict[str, Value]], rule_id: str) -> None:
    """The feasibility checks of ``PVE::HA::Rules`` that concern ``rule_id``."""
    rule = rules[rule_id]
    if int(rule.get("disable", 0) or 0):
        return
    vmids = set(parse_resources(str(rule["resources"])))
    reasons: list[str] = []
    if rule["type"] == "node-affinity":
        for other_id, other in sorted(rules.items()):
            if other_id == rule_id or other["type"] != "node-affinity":
                continue
            if int(other.get("disable", 0) or 0):
                continue
            shared = vmids & set(parse_resources(str(other["resources"])))
            reasons += [
                f"resource 'vm:{v}' is already used in another node affinity rule"
                for v in sorted(shared)
            ]
    else:
        if len(vmids) < 2:
            reasons.append("rule is ineffective as there are less than two resources")
        if rule.get("affinity") == "negative" and len(vmids) > len(cluster.nodes):
            reasons.append("rule defines more resources than available nodes")
    if reasons:
        raise PveError(
            f"Rule '{rule_id}' is invalid.", status=400, errors={"resources": ", ".join(reasons)}
        )


async def create_rule(call: Call) -> object:
    cluster = call.cluster
    rule_id = str(call.params["rule"])
    kind = str(call.params["type"])
    opts = _checked(cluster, kind, call.params)
    if rule_id in cluster.ha_rules:
        raise PveError(f"HA rule '{rule_id}' already defined")
    if kind == "node-affinity" and "nodes" not in opts:
        raise ParamError({"nodes": "property is missing and it is not optional"})
    if kind == "resource-affinity" and "affinity" not in opts:
        raise ParamError({"affinity": "property is missing and it is not optional"})
    rules = {**cluster.ha_rules, rule_id: {"type": kind, **opts}}
    _assert_feasible(cluster, rules, rule_id)
    cluster.ha_rules = rules
    return None


async def update_rule(call: Call) -> object:
    cluster = call.cluster
    rule_id = str(call.params["rule"])
    digest = call.get_str("digest")
    if digest is not None and digest != _digest(cluster):
        raise PveError("detected modified configuration - file changed by other user? Try again.")
    rule = cluster.ha_rules.get(rule_id)
    if rule is None:
        raise PveError(f"HA rule '{rule_id}' does not exist")
    opts = _checked(cluster, str(rule["type"]), call.params)
    new = dict(rule)
    for key in str(call.params.get("delete", "")).replace(";", ",").split(","):
        if key.strip() in ("resources", "nodes", "affinity"):
            raise PveError(f"unable to delete required option '{key.strip()}'")
        new.pop(key.strip(), None)
    if "disable" not in opts and "disable" in call.params:
        new.pop("disable", None)  # disable=0 enables the rule
    new.update(opts)
    rules = {**cluster.ha_rules, rule_id: new}
    _assert_feasible(cluster, rules, rule_id)
    cluster.ha_rules = rules
    return None


async def delete_rule(call: Call) -> object:
    call.cluster.ha_rules.pop(str(call.params["rule"]), None)
    return None


async def options(call: Call) -> object:
    """``GET /cluster/options``: ``crs`` as an object of its keys (booleans 0/1)."""
    crs = call.cluster.crs
    if not call.perms.has("/", ("Sys.Audit",)):
        return {"allowed-tags": []}
    out: dict[str, object] = {"ha": crs.ha}
    if crs.ha_rebalance_on_start:
        out["ha-rebalance-on-start"] = 1
    if crs.ha_auto_rebalance:
        out |= {
            "ha-auto-rebalance": 1,
            "ha-auto-rebalance-threshold": crs.ha_auto_rebalance_threshold,
            "ha-auto-rebalance-hold-duration": crs.ha_auto_rebalance_hold_duration,
            "ha-auto-rebalance-margin": crs.ha_auto_rebalance_margin,
            "ha-auto-rebalance-method": crs.ha_auto_rebalance_method,
        }
    return {"crs": out, "allowed-tags": []}


async def groups(call: Call) -> object:  # noqa: ARG001 - every handler takes the call
    """``GET /cluster/ha/groups``: no groups are simulated (on 9.x they are deprecated and
    migrated to node-affinity rules, so a migrated cluster lists none either)."""
    return []
