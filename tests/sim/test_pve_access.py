"""Access: tickets, CSRF, token/ticket 401s and 403s, permissions (users, privilege-separated
tokens, roles, ACLs with propagation and pools), ``/access/permissions``, PCI mapping creation —
through real proxmoxer over verified HTTPS; and the endpoint permission table against the PVE 8.4
schema."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from proxmoxer import AuthenticationError, ResourceException
from proxmoxer.tools import Tasks
from ruamel.yaml import YAML

from provisiond.core.pve_privileges import BUILTIN_ROLES, PRIVILEGES
from provisiond.core.topology import Topology
from provisiond.sim.pve import SimHandle
from provisiond.sim.pve.routes import ROUTES, ROUTES_9
from provisiond.sim.pve.rules import RULES
from provisiond.sim.pve.testing import EXAMPLES, proxmox_client, running_simulator

NODE = "cit-gpu-01"
TOKEN = "fleet@pve!k3s"  # privilege-separated, limited to the k3s pool
ACCESS = {
    "users": [
        {"id": "root@pam", "password": "rootpw", "tokens": [{"id": "provisiond"}]},
        {
            "id": "fleet@pve",
            "password": "fleetpw",
            "tokens": [
                {"id": "k3s", "privsep": True, "secret": "k3s-secret"},
                {"id": "same", "secret": "same-secret"},  # no privsep: the user's privileges
            ],
        },
    ],
    "roles": [{"id": "Cloner", "privileges": ["VM.Clone", "VM.Audit"]}],
    "acls": [
        {"path": "/pool/k3s", "roles": ["PVEVMAdmin"], "users": ["fleet@pve"], "tokens": [TOKEN]},
        {"path": "/vms/9000", "roles": ["Cloner"], "users": ["fleet@pve"], "tokens": [TOKEN]},
        {
            "path": "/storage/local-nvme",
            "roles": ["PVEDatastoreUser"],
            "users": ["fleet@pve"],
            "tokens": [TOKEN],
            "propagate": False,
        },
        {"path": "/mapping/pci/a100-40g", "roles": ["PVEMappingUser"], "users": ["fleet@pve"]},
    ],
}


def access_topology() -> Topology:
    data = YAML(typ="safe").load((EXAMPLES / "cps-gpu" / "topology.yaml").read_text())
    data["spec"].update(ACCESS)
    data["spec"]["pools"].append({"name": "other"})
    return Topology.model_validate(data)


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with running_simulator(access_topology(), time_scale=0.005) as handle:
        yield handle


def wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, polling_interval=0.02)
    assert status is not None
    return dict(status)


def url(sim: SimHandle, path: str) -> str:
    return f"{sim.url}/api2/json{path}"


def post_ticket(
    sim: SimHandle, form: dict[str, str], headers: dict[str, str] | None = None
) -> requests.Response:
    """``POST /access/ticket`` with a form body, as a browser logs in."""
    return requests.post(
        url(sim, "/access/ticket"), data=form, headers=headers, verify=sim.ca_path, timeout=10
    )


def forbidden(exc: pytest.ExceptionInfo[ResourceException]) -> str:
    assert exc.value.status_code == 403
    return str(exc.value.content)  # proxmoxer puts the reason phrase here


# -- tickets ------------------------------------------------------------------------------------


def test_ticket_login_formats_and_use(sim: SimHandle) -> None:
    resp = post_ticket(sim, {"username": "fleet@pve", "password": "fleetpw"})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["username"] == "fleet@pve"
    assert re.fullmatch(r"PVE:fleet@pve:[0-9A-F]{8}::[A-Za-z0-9+/]{342}==", data["ticket"])
    assert re.fullmatch(r"[0-9A-F]{8}:[A-Za-z0-9+/]{43}", data["CSRFPreventionToken"])
    assert data["cap"]["vms"]["VM.Clone"] == 1  # from the pool ACL (compute_api_permission)
    assert "clustername" not in data  # one node: no cluster; and no Sys.Audit on /
    # proxmoxer logs in the same way and sends the cookie (+ CSRF header on writes)
    api = proxmox_client(sim, user="fleet@pve", password="fleetpw")
    assert api.version.get()["release"] == "8.4"
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=1035, pool="k3s")
    assert wait(api, upid)["exitstatus"] == "OK"
    with pytest.raises(AuthenticationError):  # no realm: no such user
        proxmox_client(sim, user="root", password="rootpw")
    root = proxmox_client(sim, user="root@pam", password="rootpw")
    assert len(root.access.permissions.get(path="/")["/"]) == len(PRIVILEGES)


def test_failed_login_is_a_delayed_json_401(sim: SimHandle) -> None:
    sim.set_auth_delay(40)  # 40 simulated s at time scale 0.005: 0.2 s
    for form in (
        {"username": "fleet@pve", "password": "wrong"},
        {"username": "nobody@pve", "password": "x"},
        {"username": "fleet", "realm": "pve", "password": "wrong"},
    ):
        started = time.monotonic()
        resp = post_ticket(sim, form)
        assert time.monotonic() - started >= 0.2
        assert (resp.status_code, resp.reason) == (401, "authentication failure")
        assert resp.json() == {"data": None, "message": "authentication failure\n"}
    with pytest.raises(AuthenticationError):
        proxmox_client(sim, user="fleet@pve", password="wrong")
    ok = post_ticket(sim, {"username": "fleet", "realm": "pve", "password": "fleetpw"})
    assert ok.json()["data"]["username"] == "fleet@pve"


def test_writes_need_the_csrf_token(sim: SimHandle) -> None:
    login = post_ticket(sim, {"username": "root@pam", "password": "rootpw"}).json()["data"]
    cookies = {"PVEAuthCookie": login["ticket"]}
    body = {"id": "gpu-x", "map": f"node={NODE},path=0000:01:00.0,id=10de:20f1"}
    # GET needs no CSRF token
    got = requests.get(url(sim, "/version"), cookies=cookies, verify=sim.ca_path, timeout=10)
    assert got.status_code == 200
    for headers in ({}, {"CSRFPreventionToken": "00000000:forged"}):
        resp = requests.post(
            url(sim, "/cluster/mapping/pci"),
            data=body,
            cookies=cookies,
            headers=headers,
            verify=sim.ca_path,
            timeout=10,
        )
        assert (resp.status_code, resp.reason, resp.content) == (
            401,
            "Permission denied - invalid csrf token",
            b"",
        )
    assert sim.call(lambda c: "gpu-x" not in c.mappings)
    resp = requests.post(
        url(sim, "/cluster/mapping/pci"),
        data=body,
        cookies=cookies,
        headers={"CSRFPreventionToken": login["CSRFPreventionToken"]},
        verify=sim.ca_path,
        timeout=10,
    )
    assert resp.status_code == 200
    # the ticket also works as "Authorization: PVEAuthCookie=<ticket>"
    auth = {"Authorization": f"PVEAuthCookie={login['ticket']}"}
    got = requests.get(url(sim, "/version"), headers=auth, verify=sim.ca_path, timeout=10)
    assert got.status_code == 200


def test_tokens_cannot_get_tickets(sim: SimHandle) -> None:
    resp = post_ticket(
        sim,
        {"username": "root@pam", "password": "rootpw"},
        headers={"Authorization": f"PVEAPIToken={sim.token}"},
    )
    assert (resp.status_code, resp.reason) == (
        403,
        "Permission check failed (URI '/access/ticket' not available with API token, "
        "need proper ticket.",
    )


def test_ticket_expiry_and_renewal(sim: SimHandle) -> None:
    api = proxmox_client(sim, user="fleet@pve", password="fleetpw")
    auth = api._store["session"].auth  # proxmoxer's ProxmoxHTTPAuth
    assert sim.requests("POST", "/access/ticket") == 1
    auth.renew_age = 0  # renew before every request, as proxmoxer does after an hour
    api.version.get()
    assert sim.requests("POST", "/access/ticket") == 2  # the ticket posted as password
    sim.expire_tickets()
    with pytest.raises(AuthenticationError):  # renewing with an expired ticket fails
        api.version.get()
    auth.renew_age = 3600
    with pytest.raises(ResourceException) as exc:
        api.version.get()
    assert (exc.value.status_code, exc.value.content) == (401, "Authentication failed!")
    # a fresh login works again; a zero lifetime expires tickets at once
    api = proxmox_client(sim, user="fleet@pve", password="fleetpw")
    assert api.version.get()
    sim.set_ticket_lifetime(0)
    with pytest.raises(ResourceException) as exc:
        proxmox_client(sim, user="fleet@pve", password="fleetpw").version.get()
    assert exc.value.status_code == 401


# -- permissions --------------------------------------------------------------------------------


def test_pool_scoped_token_clones_into_its_pool_only(sim: SimHandle) -> None:
    api = proxmox_client(sim, token=f"{TOKEN}=k3s-secret")
    tmpl = api.nodes(NODE).qemu(9000)
    with pytest.raises(ResourceException) as exc:  # VM.Allocate on /vms/1040: no
        tmpl.clone.post(newid=1040)
    assert forbidden(exc) == "Permission check failed"
    with pytest.raises(ResourceException) as exc:  # ... nor on /pool/other
        tmpl.clone.post(newid=1040, pool="other")
    assert forbidden(exc) == "Permission check failed"
    with pytest.raises(ResourceException) as exc:  # Datastore.AllocateSpace on the target
        tmpl.clone.post(newid=1040, pool="k3s", full=1, storage="nfs-scratch")
    assert (
        forbidden(exc) == "Permission check failed (/storage/nfs-scratch, Datastore.AllocateSpace)"
    )
    with pytest.raises(ResourceException) as exc:
        tmpl.clone.post(newid=1040, pool="nope")
    assert forbidden(exc) == "Permission check failed"  # no VM.Allocate on /pool/nope either
    upid = tmpl.clone.post(newid=1040, pool="k3s")
    assert wait(api, upid)["exitstatus"] == "OK"
    # the clone is in the pool: the pool's PVEVMAdmin applies on /vms/1040
    vm = api.nodes(NODE).qemu(1040)
    vm.config.put(cores=4, tags="k3s")
    assert vm.config.get()["cores"] == 4
    # outside the pool nothing: an admin-made VM is invisible and untouchable
    admin = proxmox_client(sim)
    wait(admin, admin.nodes(NODE).qemu(9000).clone.post(newid=2000))
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).qemu(2000).config.get()
    assert forbidden(exc) == "Permission check failed (/vms/2000, VM.Audit)"
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).qemu(2000).status.start.post()
    assert forbidden(exc) == "Permission check failed (/vms/2000, VM.PowerMgmt)"
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).qemu(9000).config.put(cores=8)  # Cloner has no VM.Config.*
    assert forbidden(exc).startswith("Permission check failed (/vms/9000, VM.Config.Disk|")
    listed = [v["vmid"] for v in api.nodes(NODE).qemu.get()]
    assert listed == [1040, 9000]


def test_mapped_hostpci_needs_mapping_use(sim: SimHandle) -> None:
    admin = proxmox_client(sim)
    wait(admin, admin.nodes(NODE).qemu(9000).clone.post(newid=1050, pool="k3s"))
    limited = proxmox_client(sim, token=f"{TOKEN}=k3s-secret").nodes(NODE).qemu(1050)
    with pytest.raises(ResourceException) as exc:
        limited.config.put(hostpci0="mapping=a100-40g,pcie=1")
    assert forbidden(exc) == "Permission check failed (/mapping/pci/a100-40g, Mapping.Use)"
    # the user holds Mapping.Use there; its token without privilege separation too
    same = proxmox_client(sim, token="fleet@pve!same=same-secret").nodes(NODE).qemu(1050)
    same.config.put(hostpci0="mapping=a100-40g,pcie=1")
    assert same.config.get()["hostpci0"] == "mapping=a100-40g,pcie=1"
    # a clone of a VM with a mapped device checks Mapping.Use as well
    wait(admin, admin.nodes(NODE).qemu(1050).template.post())
    sim.set_acl("/vms/1050", "Cloner", tokens=[TOKEN])
    with pytest.raises(ResourceException) as exc:
        proxmox_client(sim, token=f"{TOKEN}=k3s-secret").nodes(NODE).qemu(1050).clone.post(
            newid=1051, pool="k3s"
        )
    assert forbidden(exc) == "Permission check failed (/mapping/pci/a100-40g, Mapping.Use)"


def test_privilege_separated_token_never_exceeds_its_user(sim: SimHandle) -> None:
    sim.set_acl("/", "Administrator", tokens=[TOKEN])  # the token alone claims everything
    api = proxmox_client(sim, token=f"{TOKEN}=k3s-secret")
    with pytest.raises(ResourceException) as exc:
        api.cluster.status.get()
    assert forbidden(exc) == "Permission check failed (/, Sys.Audit)"
    user = sim.permissions("fleet@pve", "/pool/k3s")
    token = sim.permissions(TOKEN, "/pool/k3s")
    assert token == user == dict.fromkeys(BUILTIN_ROLES["PVEVMAdmin"], 1)
    assert sim.permissions(TOKEN, "/") == {}
    # NoAccess deeper in the tree wins over what propagates from above
    sim.set_acl("/storage/local-nvme", "NoAccess", tokens=[TOKEN])
    assert sim.permissions(TOKEN, "/storage/local-nvme") == {}
    # a fresh token without privilege separation is exactly its user
    secret = sim.add_token("fleet@pve", "plain")
    assert sim.permissions("fleet@pve!plain", "/vms/9000") == {"VM.Audit": 1, "VM.Clone": 1}
    assert proxmox_client(sim, token=secret).nodes(NODE).qemu(9000).config.get()


def test_cluster_resources_are_filtered(sim: SimHandle) -> None:
    admin = proxmox_client(sim)
    wait(admin, admin.nodes(NODE).qemu(9000).clone.post(newid=1060, pool="k3s"))
    wait(admin, admin.nodes(NODE).qemu(9000).clone.post(newid=2060))
    full = {i["id"] for i in admin.cluster.resources.get()}
    assert {"qemu/1060", "qemu/2060", "storage/cit-gpu-01/nfs-scratch", "/pool/k3s"} <= full
    items = proxmox_client(sim, token=f"{TOKEN}=k3s-secret").cluster.resources.get()
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {
        "qemu/9000",
        "qemu/1060",
        "node/cit-gpu-01",
        "storage/cit-gpu-01/local-nvme",
    }
    assert by_id["node/cit-gpu-01"] == {
        "id": "node/cit-gpu-01",
        "type": "node",
        "node": NODE,
        "status": "online",
    }  # no Sys.Audit on /nodes/<node>: no usage figures
    sim.set_acl("/", "PVEAuditor", users=["fleet@pve"], tokens=[TOKEN])
    items = proxmox_client(sim, token=f"{TOKEN}=k3s-secret").cluster.resources.get()
    # everything but /pool/k3s: the ACL there replaces what / passes down (no Pool.Audit)
    assert {i["id"] for i in items} == full - {"/pool/k3s"}


def test_access_permissions_answers_as_pve(sim: SimHandle) -> None:
    admin = proxmox_client(sim)
    wait(admin, admin.nodes(NODE).qemu(9000).clone.post(newid=1035, pool="k3s"))
    api = proxmox_client(sim, token=f"{TOKEN}=k3s-secret")
    vmadmin = dict.fromkeys(sorted(BUILTIN_ROLES["PVEVMAdmin"]), 1)
    assert api.access.permissions.get() == {
        "/pool/k3s": vmadmin,
        "/storage/local-nvme": {"Datastore.AllocateSpace": 0, "Datastore.Audit": 0},
        "/vms/1035": dict.fromkeys(vmadmin, 0),  # from the pool: never propagated
        "/vms/9000": {"VM.Audit": 1, "VM.Clone": 1},
    }
    assert api.access.permissions.get(path="/vms/1035") == {"/vms/1035": dict.fromkeys(vmadmin, 0)}
    assert api.access.permissions.get(path="/storage/nfs-scratch") == {"/storage/nfs-scratch": {}}
    assert api.access.permissions.get(path="/mapping/pci/a100-40g") == {
        "/mapping/pci/a100-40g": {}  # the user has Mapping.Use there, the privsep token not
    }
    with pytest.raises(ResourceException) as exc:  # someone else's: Sys.Audit on /access
        api.access.permissions.get(userid="fleet@pve")
    assert forbidden(exc) == "Permission check failed (/access, Sys.Audit)"
    user = proxmox_client(sim, user="fleet@pve", password="fleetpw")
    assert user.access.permissions.get(userid=TOKEN, path="/vms/9000") == {
        "/vms/9000": {"VM.Audit": 1, "VM.Clone": 1}  # one's own token: allowed
    }
    root = admin.access.permissions.get(path="/")
    assert root == {"/": dict.fromkeys(sorted(PRIVILEGES), 1)}
    assert admin.access.permissions.get(userid="fleet@pve", path="/mapping/pci/a100-40g") == {
        "/mapping/pci/a100-40g": {"Mapping.Audit": 1, "Mapping.Use": 1}
    }


# -- PCI mappings ------------------------------------------------------------------------------


def test_create_pci_mapping(sim: SimHandle) -> None:
    api = proxmox_client(sim)
    entries = [
        f"node={NODE},path=0000:01:00.0,id=10de:20f1,iommugroup=20",
        f"node={NODE},path=0000:21:00.0;0000:41:00.0,id=10de:20f1",
    ]
    assert (
        api.cluster.mapping.pci.post(id="a100-live", map=entries, **{"live-migration-capable": 1})
        is None
    )
    got = api.cluster.mapping.pci("a100-live").get()
    assert got["map"] == [
        f"id=10de:20f1,iommugroup=20,node={NODE},path=0000:01:00.0",
        f"id=10de:20f1,node={NODE},path=0000:21:00.0;0000:41:00.0",
    ]
    assert got["live-migration-capable"] == 1
    with pytest.raises(ResourceException) as exc:
        api.cluster.mapping.pci.post(id="a100-live", map=entries[:1])
    assert exc.value.status_code == 500
    assert exc.value.content == "create hardware mapping failed: pci ID 'a100-live' already defined"
    with pytest.raises(ResourceException) as exc:
        api.cluster.mapping.pci.post(id="broken", map=["path=0000:01:00.0,id=10de:20f1"])
    assert exc.value.status_code == 400
    assert exc.value.errors == {
        "map": "invalid format - format error\nnode: property is missing and it is not optional\n"
    }
    with pytest.raises(ResourceException) as exc:
        api.cluster.mapping.pci.post(id="broken", map=[f"node={NODE},path=1:2,id=10de:20f1"])
    assert exc.value.errors == {
        "map": "invalid format - format error\npath: value does not match the regex pattern\n"
    }
    limited = proxmox_client(sim, token=f"{TOKEN}=k3s-secret")
    with pytest.raises(ResourceException) as exc:
        limited.cluster.mapping.pci.post(id="mine", map=entries[:1])
    assert forbidden(exc) == "Permission check failed (/mapping/pci, Mapping.Modify)"
    assert limited.cluster.mapping.pci.get() == []  # no Mapping.* on any mapping
    with pytest.raises(ResourceException) as exc:
        limited.cluster.mapping.pci("a100-40g").get()
    assert forbidden(exc) == "Permission check failed"
    user = proxmox_client(sim, token="fleet@pve!same=same-secret")
    assert [m["id"] for m in user.cluster.mapping.pci.get()] == ["a100-40g"]


# -- the permission table against the PVE 8.4 schema --------------------------------------------


def test_every_route_has_the_schemas_permission_rule(
    pve_schema: dict[tuple[str, str], dict[str, Any]],
    pve_schema_9: dict[tuple[str, str], dict[str, Any]],
) -> None:
    missing = sorted((set(ROUTES) | set(ROUTES_9)) - set(RULES))
    assert not missing, f"routes without a rule in rules.RULES: {missing}"
    for key, rule in RULES.items():
        info = pve_schema[key] if key not in ROUTES_9 else pve_schema_9[key]  # 9.x only: 9.1
        perms = info.get("permissions", {})
        assert (rule.check.schema() if rule.check else None) == perms.get("check"), key
        assert rule.user == perms.get("user"), key
        assert rule.allowtoken == bool(info.get("allowtoken", 1)), key
