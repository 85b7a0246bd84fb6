"""The route table: (method, path template) -> handler. Every route has its entry in
``params.ENDPOINTS``; ``match`` resolves a request path to its template and path variables."""

from __future__ import annotations

import re
from dataclasses import dataclass

from provisiond.sim.pve.handlers import (
    Handler,
    access,
    cluster,
    harules,
    hastatus,
    info,
    migrate,
    pools,
    power,
    qemu,
    snapshots,
    volumes,
)
from provisiond.sim.pve.params import BY_ROUTE, BY_ROUTE_9, Endpoint

_Q = "/nodes/{node}/qemu/{vmid}"
ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/version"): cluster.version,
    ("GET", "/cluster/options"): harules.options,
    ("GET", "/cluster/ha/groups"): harules.groups,
    ("POST", "/access/ticket"): access.create_ticket,
    ("GET", "/access/permissions"): access.permissions,
    ("POST", "/cluster/mapping/pci"): access.create_mapping,
    ("GET", "/cluster/resources"): cluster.resources,
    ("GET", "/cluster/nextid"): cluster.nextid,
    ("GET", "/cluster/status"): cluster.cluster_status,
    ("GET", "/cluster/tasks"): cluster.cluster_tasks,
    ("GET", "/cluster/mapping/pci"): cluster.mappings,
    ("GET", "/cluster/mapping/pci/{id}"): cluster.mapping,
    ("GET", "/pools"): cluster.pools,
    ("GET", "/nodes"): cluster.nodes,
    ("GET", "/nodes/{node}/status"): cluster.node_status,
    ("GET", "/nodes/{node}/hardware/pci"): cluster.hardware_pci,
    ("GET", "/nodes/{node}/storage"): cluster.node_storage,
    ("GET", "/nodes/{node}/tasks"): cluster.node_tasks,
    ("GET", "/nodes/{node}/tasks/{upid}/status"): cluster.task_status,
    ("GET", "/nodes/{node}/tasks/{upid}/log"): cluster.task_log,
    ("GET", "/nodes/{node}/qemu"): qemu.list_vms,
    ("POST", "/nodes/{node}/qemu"): qemu.create_vm,
    ("GET", f"{_Q}/config"): qemu.get_config,
    ("PUT", f"{_Q}/config"): qemu.put_config,
    ("POST", f"{_Q}/config"): qemu.post_config,
    ("GET", f"{_Q}/pending"): qemu.get_pending,
    ("GET", f"{_Q}/status/current"): qemu.status_current,
    ("POST", f"{_Q}/status/start"): power.start,
    ("POST", f"{_Q}/status/stop"): power.stop,
    ("POST", f"{_Q}/status/shutdown"): power.shutdown,
    ("POST", f"{_Q}/status/reboot"): power.reboot,
    ("POST", f"{_Q}/clone"): volumes.clone,
    ("POST", f"{_Q}/template"): volumes.template,
    ("DELETE", _Q): volumes.destroy,
    ("PUT", f"{_Q}/resize"): volumes.resize,
    ("GET", f"{_Q}/migrate"): migrate.precondition,
    ("POST", f"{_Q}/migrate"): migrate.migrate,
    # what common clients read first, snapshots, pause/reset
    ("GET", "/nodes/{node}/version"): info.node_version,
    ("GET", "/cluster/ha/status/current"): hastatus.current,
    ("GET", "/cluster/ha/status/manager_status"): hastatus.manager_status,
    ("GET", "/nodes/{node}/lxc"): info.lxc_list,
    ("GET", "/nodes/{node}/rrddata"): info.node_rrddata,
    ("GET", "/storage"): info.storage_config,
    ("GET", "/pools/{poolid}"): pools.get_pool,
    ("PUT", "/pools/{poolid}"): pools.update_pool,
    ("GET", _Q): info.vm_index,
    ("GET", f"{_Q}/rrddata"): info.vm_rrddata,
    ("GET", f"{_Q}/snapshot"): snapshots.list_snapshots,
    ("POST", f"{_Q}/snapshot"): snapshots.create_snapshot,
    ("GET", f"{_Q}/snapshot/{{snapname}}"): snapshots.snapshot_index,
    ("DELETE", f"{_Q}/snapshot/{{snapname}}"): snapshots.delete_snapshot,
    ("GET", f"{_Q}/snapshot/{{snapname}}/config"): snapshots.snapshot_config,
    ("PUT", f"{_Q}/snapshot/{{snapname}}/config"): snapshots.update_snapshot_config,
    ("POST", f"{_Q}/snapshot/{{snapname}}/rollback"): snapshots.rollback,
    ("POST", f"{_Q}/status/suspend"): power.suspend,
    ("POST", f"{_Q}/status/resume"): power.resume,
    ("POST", f"{_Q}/status/reset"): power.reset,
}
assert set(ROUTES) == set(BY_ROUTE), "every route needs its parameter table entry"

# served from PVE 9 on (``pveVersion: "9.1"``); on 8.4 these paths are a 501
ROUTES_9: dict[tuple[str, str], Handler] = {
    ("GET", "/cluster/ha/rules"): harules.list_rules,
    ("POST", "/cluster/ha/rules"): harules.create_rule,
    ("GET", "/cluster/ha/rules/{rule}"): harules.get_rule,
    ("PUT", "/cluster/ha/rules/{rule}"): harules.update_rule,
    ("DELETE", "/cluster/ha/rules/{rule}"): harules.delete_rule,
}
assert set(ROUTES_9) == set(BY_ROUTE_9), "every 9.x route needs its parameter table entry"

_PATTERNS = [
    (template, re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", template) + "$"))
    for template in sorted({t for _, t in (*ROUTES, *ROUTES_9)})
]
_TEMPLATES_9 = {t for _, t in ROUTES_9} - {t for _, t in ROUTES}


@dataclass(frozen=True, slots=True)
class Match:
    template: str
    path_vars: dict[str, str]
    endpoint: Endpoint | None  # None: the path exists but not with this method
    handler: Handler | None


def match(method: str, path: str, version: str = "8.4") -> Match | None:
    """The route of ``path`` on a cluster of PVE ``version`` (9.x paths are unknown to 8.4)."""
    nine = not version.startswith("8")
    for template, pattern in _PATTERNS:
        if template in _TEMPLATES_9 and not nine:
            continue
        m = pattern.match(path)
        if m is not None:
            key = (method, template)
            if nine and key in ROUTES_9:
                return Match(template, m.groupdict(), BY_ROUTE_9[key], ROUTES_9[key])
            return Match(template, m.groupdict(), BY_ROUTE.get(key), ROUTES.get(key))
    return None
