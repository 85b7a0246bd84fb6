"""Every endpoint the simulator serves, answered through proxmoxer over verified HTTPS and checked
against the ``returns`` of the real PVE API schema (third-party data read from ../shared/proxmox,
never copied into the repo): 8.4 routes against the 8.4 schema, the 9.x-only ones against 9.1.

A response conforms when its type is the schema's (``null``, ``string``, ``object``, ``array``,
recursively into items and properties), every property the schema promises (not ``optional``)
is there, and a value with an ``enum`` is one of it. A task's ``string`` is a UPID whose task
ends ``OK``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from proxmoxer.tools import Tasks

from provisiond.core.topology import Topology
from provisiond.sim.pve.routes import ROUTES, ROUTES_9
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration

Route = tuple[str, str]
Schema = dict[Route, dict[str, Any]]
NODE = "cit-gpu-01"
QEMU = "/nodes/{node}/qemu"
Q = QEMU + "/{vmid}"
UPID = re.compile(r"^UPID:[a-zA-Z0-9\-]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:\w+:[^:]*:[^:]+:$")


def problems(value: object, schema: dict[str, Any], where: str) -> list[str]:
    """How ``value`` departs from a PVE ``returns`` schema (empty: it conforms)."""
    want = schema.get("type")
    if value is None:
        return [] if want == "null" or schema.get("optional") else [f"{where}: null, want {want}"]
    if want is not None and not _is_a(value, want):
        return [f"{where}: {value!r} is not {want}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    out: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += problems(item, schema.get("items", {}), f"{where}[{i}]")
    elif isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        missing = sorted(k for k, p in props.items() if not p.get("optional") and k not in value)
        out += [f"{where}: promised '{k}' missing" for k in missing]
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], f"{where}.{key}")
    return out


def _is_a(value: object, want: str) -> bool:
    """A JSON value against a PVE schema type (booleans travel as 0/1)."""
    match want:
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return value in (0, 1)
        case "string":
            return isinstance(value, str)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
        case "null":
            return value is None
    return True


# where real PVE departs from its own schema, and the simulator with it
KNOWN = (
    # SEMANTICS "Types on the wire": Perl's JSON encoder sends nextid as a string
    re.compile(r"^\('GET', '/cluster/nextid'\): '\d+' is not integer$"),
    # the schema says string; qemu-server parses [PENDING] as the config (check_type), so an
    # integer option's value is a number there as in GET config
    re.compile(
        r"^\('GET', '/nodes/\{node\}/qemu/\{vmid\}/pending'\)\[\d+\]\.(value|pending): "
        r"-?\d+(\.\d+)? is not string$"
    ),
)


def _check_all(samples: dict[Route, Any], schema: Schema) -> None:
    found = [p for r, data in samples.items() for p in problems(data, schema[r]["returns"], str(r))]
    departures = [p for p in found if not any(k.match(p) for k in KNOWN)]
    assert not departures, "\n".join(departures)


def test_the_checker_finds_departures() -> None:
    obj = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"optional": 1}}}
    assert problems({"a": 1}, obj, "x") == []
    assert problems({"a": "1"}, obj, "x") == ["x.a: '1' is not integer"]
    assert problems({}, obj, "x") == ["x: promised 'a' missing"]
    assert problems("UPID", {"type": "null"}, "x") == ["x: 'UPID' is not null"]
    assert problems(None, {"type": "string"}, "x") == ["x: null, want string"]
    assert problems(None, {"type": "string", "optional": 1}, "x") == []
    assert problems(
        [{"t": "c"}], {"type": "array", "items": {"properties": {"t": {"enum": ["a"]}}}}, "x"
    ) == ["x[0].t: 'c' not in ['a']"]


def test_every_get_conforms(pve_sim: Any, pve_schema: Schema) -> None:
    api = pve_sim.api
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=1035)
    Tasks.blocking_status(api, upid, polling_interval=0.02)
    q = api.nodes(NODE).qemu(1035)
    q.config.put(cores=4)  # something pending
    snap = q.snapshot.post(snapname="s1", description="first")
    Tasks.blocking_status(api, snap, polling_interval=0.02)
    samples: dict[Route, Any] = {
        ("GET", "/version"): api.version.get(),
        ("GET", "/cluster/options"): api.cluster.options.get(),
        ("GET", "/cluster/ha/groups"): api.cluster.ha.groups.get(),
        ("GET", "/cluster/resources"): api.cluster.resources.get(),
        ("GET", "/cluster/status"): api.cluster.status.get(),
        ("GET", "/cluster/tasks"): api.cluster.tasks.get(),
        ("GET", "/cluster/mapping/pci"): api.cluster.mapping.pci.get(),
        ("GET", "/pools"): api.pools.get(),
        ("GET", "/nodes"): api.nodes.get(),
        ("GET", "/nodes/{node}/status"): api.nodes(NODE).status.get(),
        ("GET", "/nodes/{node}/hardware/pci"): api.nodes(NODE).hardware.pci.get(),
        ("GET", "/nodes/{node}/storage"): api.nodes(NODE).storage.get(),
        ("GET", "/nodes/{node}/tasks"): api.nodes(NODE).tasks.get(),
        ("GET", "/nodes/{node}/tasks/{upid}/status"): api.nodes(NODE).tasks(upid).status.get(),
        ("GET", "/nodes/{node}/tasks/{upid}/log"): api.nodes(NODE).tasks(upid).log.get(),
        ("GET", QEMU): api.nodes(NODE).qemu.get(),
        ("GET", f"{Q}/config"): q.config.get(),
        ("GET", f"{Q}/pending"): q.pending.get(),
        ("GET", f"{Q}/status/current"): q.status.current.get(),
        ("GET", f"{Q}/migrate"): q.migrate.get(),
        ("GET", "/cluster/nextid"): api.cluster.nextid.get(),
        ("GET", "/cluster/mapping/pci/{id}"): api.cluster.mapping.pci("a100-40g").get(),
        ("GET", "/access/permissions"): api.access.permissions.get(),
        ("GET", "/nodes/{node}/version"): api.nodes(NODE).version.get(),
        ("GET", "/cluster/ha/status/current"): api.cluster.ha.status.current.get(),
        ("GET", "/cluster/ha/status/manager_status"): api.cluster.ha.status.manager_status.get(),
        ("GET", "/nodes/{node}/lxc"): api.nodes(NODE).lxc.get(),
        ("GET", "/nodes/{node}/rrddata"): api.nodes(NODE).rrddata.get(timeframe="hour"),
        ("GET", "/pools/{poolid}"): api.pools(api.pools.get()[0]["poolid"]).get(),
        ("GET", "/storage"): api.storage.get(),
        ("GET", Q): q.get(),
        ("GET", f"{Q}/rrddata"): q.rrddata.get(timeframe="day"),
        ("GET", f"{Q}/snapshot"): q.snapshot.get(),
        ("GET", f"{Q}/snapshot/{{snapname}}"): q.snapshot("s1").get(),
        ("GET", f"{Q}/snapshot/{{snapname}}/config"): q.snapshot("s1").config.get(),
    }
    assert {r for r in ROUTES if r[0] == "GET"} == set(samples)  # every GET served
    none_simulated = {("GET", "/nodes/{node}/lxc"), ("GET", "/cluster/ha/groups")}
    for route, data in samples.items():
        assert data or route in none_simulated, route  # an empty answer proves nothing
    _check_all(samples, pve_schema)


class _Writes:
    """Sends the writes, keeping each answer by route; a UPID's task must end OK."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.samples: dict[Route, Any] = {}

    def sync(self, route: Route, answer: Any) -> None:
        self.samples[route] = answer

    def task(self, route: Route, upid: Any) -> None:
        self.samples[route] = upid
        assert isinstance(upid, str), (route, upid)
        assert UPID.match(upid), (route, upid)
        status = Tasks.blocking_status(self.api, upid, timeout=30, polling_interval=0.02)
        assert status is not None, route
        assert status["exitstatus"] == "OK", (route, status)


@pytest.mark.parametrize("pve_sim", ["astronomy-lab"], indirect=True)
def test_every_write_conforms(pve_sim: Any, pve_schema: Schema) -> None:
    """Every POST/PUT/DELETE of 8.4 (two nodes and shared storage, for the migration)."""
    api, sim = pve_sim.api, pve_sim.sim
    w = _Writes(api)
    nas = api.nodes("nas01")
    w.task(("POST", QEMU), nas.qemu.post(vmid=1040, name="fresh", scsi0="nas-nfs:1"))
    w.task(("POST", f"{Q}/template"), nas.qemu(1040).template.post())
    w.task(("POST", f"{Q}/clone"), nas.qemu(9000).clone.post(newid=1035, name="c"))
    q = nas.qemu(1035)
    w.sync(("PUT", f"{Q}/config"), q.config.put(cores=3))
    w.task(("POST", f"{Q}/config"), q.config.post(cores=4))
    w.task(("PUT", f"{Q}/resize"), q.resize.put(disk="scsi0", size="+1G"))
    for action in ("start", "reboot", "suspend", "resume", "reset", "shutdown", "start", "stop"):
        w.task(("POST", f"{Q}/status/{action}"), getattr(q.status, action).post())
    snap = f"{Q}/snapshot"
    w.task(("POST", snap), q.snapshot.post(snapname="s1"))
    w.sync(("PUT", f"{snap}/{{snapname}}/config"), q.snapshot("s1").config.put(description="d"))
    w.task(("POST", f"{snap}/{{snapname}}/rollback"), q.snapshot("s1").rollback.post())
    w.task(("DELETE", f"{snap}/{{snapname}}"), q.snapshot("s1").delete())
    w.task(("POST", f"{Q}/migrate"), q.migrate.post(target="node01"))
    assert api.nodes("node01").qemu(1035).status.current.get()["status"] == "stopped"
    w.task(("DELETE", Q), nas.qemu(1040).delete())
    w.sync(("PUT", "/pools/{poolid}"), api.pools("proj").put(comment="projects"))
    mapping = {"id": "rtx-2", "map": ["node=node04,path=0000:0b:00.0,id=10de:2206"]}
    w.sync(("POST", "/cluster/mapping/pci"), api.cluster.mapping.pci.post(**mapping))
    sim.add_user("ops@pve", password="s3cret")
    ops = proxmox_client(sim, user="ops@pve", password="s3cret")
    ticket = ops.access.ticket.post(username="ops@pve", password="s3cret")
    w.sync(("POST", "/access/ticket"), ticket)
    assert ticket["username"] == "ops@pve"
    assert {"ticket", "CSRFPreventionToken"} <= set(ticket)
    assert {r for r in ROUTES if r[0] != "GET"} == set(w.samples)  # every write served
    _check_all(w.samples, pve_schema)


def _topology_91() -> Topology:
    vm = {"host": "node01", "status": "running", "storage": "shared", "hastate": "started"}
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "nine"},
            "spec": {
                "pveVersion": "9.1",
                "hosts": [{"name": n, "cpus": 8, "memory": "32GiB"} for n in ("node01", "node02")],
                "storages": [{"name": "shared", "type": "nfs", "shared": True, "size": "1TiB"}],
                "vms": [{**vm, "vmid": 101, "name": "a"}, {**vm, "vmid": 102, "name": "b"}],
            },
        }
    )


def test_every_9x_route_conforms_to_the_91_schema(pve_schema: Schema, pve_schema_9: Schema) -> None:
    with running_simulator(_topology_91(), time_scale=0.002) as sim:
        api = proxmox_client(sim)
        rules = api.cluster.ha.rules
        rule = {"type": "node-affinity", "resources": "vm:101", "nodes": "node01"}
        samples: dict[Route, Any] = {("POST", "/cluster/ha/rules"): rules.post(rule="r1", **rule)}
        samples[("GET", "/cluster/ha/rules")] = rules.get()
        samples[("GET", "/cluster/ha/rules/{rule}")] = rules("r1").get()
        put = rules("r1").put(type="node-affinity", comment="kept")
        samples[("PUT", "/cluster/ha/rules/{rule}")] = put
        samples[("DELETE", "/cluster/ha/rules/{rule}")] = rules("r1").delete()
    assert set(ROUTES_9) == set(samples)
    assert not set(samples) & set(pve_schema)  # 9.x only
    assert samples[("GET", "/cluster/ha/rules")]  # not an empty list
    _check_all(samples, pve_schema_9)
