"""Parameters of the endpoints only PVE 9.x serves: HA rules (``/cluster/ha/rules``).

Served when the topology says ``pveVersion: "9.1"``; on 8.4 these paths are a 501, as on a real
8.4 node. ``tests/sim/test_pve_contract.py`` checks this table against
``../shared/proxmox/pve-api-schema-9.1.json`` (the rest of the table against the 8.4 schema).
"""

from __future__ import annotations

from provisiond.sim.pve.params.schema import Endpoint, P

RULE_TYPES = ("node-affinity", "resource-affinity")
_RULE = P("string", optional=False, fmt="pve-configid")
_COMMON = {
    "affinity": P("string", enum=("positive", "negative")),
    "comment": P("string", max_length=4096),
    "disable": P("boolean"),
    "nodes": P("string", fmt="pve-ha-node-list"),
    "rule": _RULE,
    "strict": P("boolean"),
}

ENDPOINTS_9: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/cluster/ha/rules",
        {"resource": P("string"), "type": P("string", enum=RULE_TYPES)},
        returns=("rule",),
    ),
    Endpoint(
        "POST",
        "/cluster/ha/rules",
        {
            **_COMMON,
            "resources": P("string", optional=False, fmt="pve-ha-resource-id-list"),
            "type": P("string", optional=False, enum=RULE_TYPES),
        },
    ),
    Endpoint("GET", "/cluster/ha/rules/{rule}", {"rule": _RULE}, returns=("rule", "type")),
    Endpoint(
        "PUT",
        "/cluster/ha/rules/{rule}",
        {
            **_COMMON,
            "delete": P("string", fmt="pve-configid-list", max_length=4096),
            "digest": P("string", max_length=64),
            "resources": P("string", fmt="pve-ha-resource-id-list"),
            "type": P("string", optional=False, enum=RULE_TYPES),
        },
    ),
    Endpoint("DELETE", "/cluster/ha/rules/{rule}", {"rule": _RULE}),
)
