"""The HA stack's status, as ``PVE::API2::HA::Status`` reports it (both 8.4 and 9.x).

- ``GET /cluster/ha/status/current``: ``quorum`` always; while the CRM is active (HA resources
  exist, or a node is in maintenance) also ``master`` (the first online node), one
  ``lrm:<node>`` per node — its ``status`` text ``<node> (<state>, <watchdog>,
  <time>)`` with ``<state>`` ``active``/``idle``, ``maintenance mode`` for a node in HA
  maintenance, ``old timestamp - dead?`` for an offline node — and one ``service:vm:<id>`` per
  HA resource with its ``hastate``;
- ``GET /cluster/ha/status/manager_status``: ``{manager_status, quorum, lrm_status}`` — the
  CRM's ``node_status`` (``online``, ``maintenance``, ``unknown``), ``node_request`` (``{node:
  {maintenance: 1}}`` while one is requested), ``service_status``; per node the LRM's ``mode``
  (``active``/``maintenance``) and ``state``. Without an active CRM ``manager_status`` is ``{}``
  (PVE reads an absent manager status file) and no ``lrm_status``.
"""

from __future__ import annotations

import time

from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.state import Cluster, Node, VmState

_REQUESTED = {"started": "started", "starting": "started", "migrate": "started"}


def _services(cluster: Cluster) -> list[VmState]:
    return sorted(
        (vm for vm in cluster.vms.values() if vm.hastate is not None), key=lambda v: v.vmid
    )


def _master(cluster: Cluster) -> str:
    online = [n for n in cluster.nodes.values() if n.online]
    return online[0].name if online else next(iter(cluster.nodes))


def _crm_active(cluster: Cluster) -> bool:
    """The CRM stays master while resources exist or a node is in maintenance
    (``PVE::HA::CRM::can_get_active``)."""
    return bool(_services(cluster)) or any(n.ha_maintenance for n in cluster.nodes.values())


def _lrm_state(node: Node, services: list[VmState]) -> tuple[str, str]:
    """(the LRM's state as the status text shows it, its watchdog)."""
    busy = any(vm.node == node.name for vm in services)
    if not node.online:
        return "old timestamp - dead?", "watchdog standby"
    if node.ha_maintenance:
        return "maintenance mode", "watchdog active" if busy else "watchdog standby"
    return ("active", "watchdog active") if busy else ("idle", "watchdog standby")


async def current(call: Call) -> object:
    cluster = call.cluster
    master = _master(cluster)
    now = int(time.time())
    out: list[dict[str, object]] = [
        {"id": "quorum", "type": "quorum", "node": master, "status": "OK", "quorate": 1}
    ]
    if not _crm_active(cluster):
        return out
    services = _services(cluster)
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now))
    out.append(
        {
            "id": "master",
            "type": "master",
            "node": master,
            "status": f"{master} (active, {stamp})",
            "timestamp": now,
        }
    )
    for node in cluster.nodes.values():
        state, watchdog = _lrm_state(node, services)
        out.append(
            {
                "id": f"lrm:{node.name}",
                "type": "lrm",
                "node": node.name,
                "status": f"{node.name} ({state}, {watchdog}, {stamp})",
                "timestamp": now,
            }
        )
    for vm in services:
        state = str(vm.hastate)
        out.append(
            {
                "id": f"service:vm:{vm.vmid}",
                "type": "service",
                "sid": f"vm:{vm.vmid}",
                "node": vm.node,
                "state": state,
                "crm_state": state,
                "request_state": _REQUESTED.get(state, "stopped"),
                "status": f"vm:{vm.vmid} ({vm.node}, {state})",
                "max_restart": 1,
                "max_relocate": 1,
            }
        )
    return out


async def manager_status(call: Call) -> object:
    cluster = call.cluster
    master = _master(cluster)
    out: dict[str, object] = {"quorum": {"node": master, "quorate": "1"}}
    if not _crm_active(cluster):
        out["manager_status"] = {}
        return out
    now = int(time.time())
    nodes = cluster.nodes.values()
    out["manager_status"] = {
        "master_node": master,
        "timestamp": now,
        "node_status": {
            n.name: "maintenance" if n.ha_maintenance else "online" if n.online else "unknown"
            for n in nodes
        },
        "node_request": {n.name: {"maintenance": 1} for n in nodes if n.ha_maintenance},
        "service_status": {
            f"vm:{vm.vmid}": {
                "node": vm.node,
                "state": str(vm.hastate),
                **({"maintenance_node": vm.maintenance_node} if vm.maintenance_node else {}),
            }
            for vm in _services(cluster)
        },
    }
    out["lrm_status"] = {
        n.name: {
            "mode": "maintenance" if n.ha_maintenance else "active",
            "state": "maintenance" if n.ha_maintenance else "active",
            "timestamp": now if n.online else now - 3600,
            "results": {},
        }
        for n in nodes
    }
    return out
