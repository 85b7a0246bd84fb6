"""Topology documents: the example clusters' facts and every validation rule."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from provisiond.core.pve_privileges import BUILTIN_ROLES, PRIVILEGES
from provisiond.core.topology import (
    VM,
    HostPci,
    Lock,
    PciDevice,
    StorageType,
    Topology,
    VMStatus,
    parse_size,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
GiB = 1 << 30


def load(name: str) -> Topology:
    data = YAML(typ="safe").load((EXAMPLES / name / "topology.yaml").read_text())
    return Topology.model_validate(data)


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": "t"},
        "spec": {
            "hosts": [
                {
                    "name": "h1",
                    "cpus": 8,
                    "memory": "32GiB",
                    "pciDevices": [
                        {"address": "0000:01:00.0", "id": "10de:20f1", "name": "A100"},
                    ],
                },
                {"name": "h2", "cpus": 8, "memory": "32GiB"},
            ],
            "storages": [
                {"name": "local", "type": "lvmthin", "size": "1TB", "hosts": ["h1"]},
                {"name": "nfs", "type": "nfs", "shared": True, "size": "8TB"},
            ],
            "pciMappings": [{"id": "gpu", "map": [{"host": "h1", "path": "0000:01:00.0"}]}],
            "pools": [{"name": "p"}],
            "templates": [
                {
                    "name": "tmpl",
                    "vmid": 9000,
                    "host": "h1",
                    "storage": "local",
                    "disks": [{"slot": "scsi0", "size": "32G"}],
                }
            ],
            "vms": [
                {
                    "name": "vm1",
                    "vmid": 100,
                    "host": "h1",
                    "status": "running",
                    "storage": "local",
                    "disks": [{"slot": "scsi0", "size": "32G"}],
                    "hostpci": [{"slot": "hostpci0", "mapping": "gpu"}],
                    "pool": "p",
                }
            ],
            "users": [{"id": "root@pam", "tokens": [{"id": "provisiond"}]}],
        },
    }


def invalid(mutate: Any) -> str:
    data = minimal()
    mutate(data["spec"])
    with pytest.raises(ValidationError) as exc:
        Topology.model_validate(data)
    return str(exc.value)


# -- the example clusters (EXAMPLES.md) ------------------------------------------------------


def test_cps_gpu_example() -> None:
    t = load("cps-gpu")
    assert t.metadata.name == "cps-gpu"
    (host,) = t.spec.hosts
    assert (host.name, host.cpus, host.memory) == ("cit-gpu-01", 128, 1024 * GiB)
    assert [d.id for d in host.pci_devices] == ["10de:20f1"] * 8
    mapping = t.mapping("a100-40g")
    assert mapping is not None
    assert len(mapping.entries_on("cit-gpu-01")) == 8
    assert {s.name: (s.type, s.shared) for s in t.spec.storages} == {
        "local-nvme": (StorageType.LVMTHIN, False),
        "nfs-scratch": (StorageType.NFS, True),
    }
    local = t.storage("local-nvme")
    assert local is not None
    assert local.size == 2 * 10**12
    (tmpl,) = t.spec.templates
    assert (tmpl.name, tmpl.vmid, tmpl.host, tmpl.storage, tmpl.bridge) == (
        "k3s-node-tmpl",
        9000,
        "cit-gpu-01",
        "local-nvme",
        "vmbr0",
    )
    assert t.spec.vms == ()


def test_astronomy_lab_example_matches_the_table() -> None:
    t = load("astronomy-lab")
    table = {  # host: (logical CPUs, GiB, VMs, vCPU used, GiB used)
        "node01": (16, 64, {"proj-k8sm01", "proj-k8sw01", "dc01", "lab-soc1"}, 16, 58),
        "node02": (
            16,
            64,
            {"proj-k8sm02", "proj-k8sw02", "lab-dns01", "lab-mon01", "lab-ansible01", "lab-apps01"},
            18,
            66,
        ),
        "node03": (
            16,
            64,
            {"proj-k8sm03", "proj-k8sw03", "lab-db01", "dc02", "proj-dns01"},
            16,
            64,
        ),
        "node04": (
            32,
            128,
            {
                "proj-k8sw04",
                "proj-pg01",
                "proj-pggis01",
                "proj-pgts01",
                "proj-rds01",
                "proj-apps01",
                "proj-fs01",
                "lab-port01",
            },
            28,
            86,
        ),
        "nas01": (16, 128, {"proj-k8sw05", "proj-kasm01"}, 14, 56),
    }
    assert [h.name for h in t.spec.hosts] == list(table)
    for host in t.spec.hosts:
        cpus, mem, names, used_cpu, used_mem = table[host.name]
        vms = t.vms_on(host.name)
        assert (host.cpus, host.memory) == (cpus, mem * GiB)
        assert {vm.name for vm in vms} == names
        assert sum(vm.cores * vm.sockets for vm in vms) == used_cpu
        assert sum(vm.memory for vm in vms) == used_mem * GiB
    assert all(vm.tags == () for vm in t.spec.vms)
    nfs = t.storage("nas-nfs")
    assert nfs is not None
    assert nfs.shared
    (tmpl,) = t.spec.templates
    assert (tmpl.name, tmpl.storage) == ("ubuntu-2404-tmpl", "nas-nfs")
    rtx = t.mapping("rtx3080")
    assert rtx is not None
    assert [(e.host, e.id) for e in rtx.map] == [("node04", "10de:2206")]
    local = t.storage("local-nvme")
    assert local is not None
    assert local.size_on("node01") == 10**12
    assert local.size_on("node04") == 2 * 10**12
    assert [s.name for s in t.storages_of("nas01")] == ["local-zfs", "nas-nfs"]


def test_inferno_example() -> None:
    t = load("inferno")
    hosts = {h.name: (h.cpus, h.memory // GiB) for h in t.spec.hosts}
    assert hosts == {
        "inferno-host-compute-1": (384, 768),
        "inferno-host-exper-1": (64, 512),
        "inferno-host-master": (128, 256),
    }
    pro, l40s = t.mapping("rtx-pro-6000"), t.mapping("l40s")
    assert pro is not None
    assert l40s is not None
    assert len(pro.entries_on("inferno-host-compute-1")) == 4
    assert len(l40s.entries_on("inferno-host-exper-1")) == 2
    exper = t.host("inferno-host-exper-1")
    assert exper is not None
    assert {d.id for d in exper.pci_devices} == {"10de:26b9"}
    assert all("L40S" in d.name for d in exper.pci_devices)
    assert t.spec.vms == ()
    assert len(t.spec.templates) == 1


def test_examples_mark_assumed_values() -> None:
    for name in ("cps-gpu", "astronomy-lab", "inferno"):
        assert "# assumed" in (EXAMPLES / name / "topology.yaml").read_text()


# -- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64GiB", 64 * GiB),
        ("100G", 100 * GiB),
        ("2TB", 2 * 10**12),
        ("512M", 512 << 20),
        ("1.5 KiB", 1536),
        ("4096", 4096),
        ("1kb", 1000),
        (4096, 4096),
        ("3b", 3),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["64 GiBs", "", "-1G", True, 1.5, -5, "G"])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_bad_size_in_document_is_a_validation_error() -> None:
    msg = invalid(lambda s: s["hosts"][0].update(memory="lots"))
    assert "invalid size 'lots'" in msg


# -- model shape -----------------------------------------------------------------------------


def test_minimal_document_and_lookups() -> None:
    t = Topology.model_validate(minimal())
    vm = t.spec.vms[0]
    assert isinstance(vm, VM)
    assert vm.status is VMStatus.RUNNING
    assert vm.memory == 2 * GiB  # default
    assert vm.disk_storage(vm.disks[0]) == "local"
    assert t.host("nope") is None
    assert t.storage("nope") is None
    assert t.mapping("nope") is None
    h1 = t.host("h1")
    assert h1 is not None
    dev = h1.device("0000:01:00.0")
    assert isinstance(dev, PciDevice)
    assert (dev.vendor, dev.device) == ("10de", "20f1")
    assert [g.vmid for g in t.guests()] == [9000, 100]
    assert t.spec.users[0].tokens[0].secret is None


def test_models_are_frozen_and_strict() -> None:
    t = Topology.model_validate(minimal())
    with pytest.raises(ValidationError):
        t.spec.hosts[0].cpus = 4  # type: ignore[misc]
    msg = invalid(lambda s: s["hosts"][0].update(cpu_count=3))
    assert "cpu_count" in msg
    assert "Extra inputs are not permitted" in msg


def test_kind_and_api_version_are_checked() -> None:
    data = minimal()
    data["kind"] = "Fleet"
    with pytest.raises(ValidationError, match="kind"):
        Topology.model_validate(data)


def test_vm_lock_and_status_enums() -> None:
    def set_lock(spec: dict[str, Any]) -> None:
        spec["vms"][0]["lock"] = "clone"

    data = minimal()
    set_lock(data["spec"])
    assert Topology.model_validate(data).spec.vms[0].lock is Lock.CLONE
    assert "lock" in invalid(lambda s: s["vms"][0].update(lock="held"))


def test_hostpci_needs_exactly_one_of_mapping_and_host() -> None:
    assert HostPci(slot="hostpci0", host="0000:01:00.0").mapping is None
    with pytest.raises(ValidationError, match="exactly one"):
        HostPci(slot="hostpci0")
    with pytest.raises(ValidationError, match="exactly one"):
        HostPci(slot="hostpci0", host="0000:01:00.0", mapping="gpu")


# -- validation rules ------------------------------------------------------------------------


def _dup_host(s: dict[str, Any]) -> None:
    s["hosts"].append(copy.deepcopy(s["hosts"][1]))


def _dup_vmid(s: dict[str, Any]) -> None:
    s["vms"].append({"name": "other", "vmid": 9000, "host": "h2"})


def _dup_name(s: dict[str, Any]) -> None:
    s["vms"].append({"name": "tmpl", "vmid": 101, "host": "h2"})


def _dup_token(s: dict[str, Any]) -> None:
    s["users"][0]["tokens"].append({"id": "provisiond"})


def _dup_pci(s: dict[str, Any]) -> None:
    devs = s["hosts"][0]["pciDevices"]
    devs.append(dict(devs[0]))


def _dup_map_entry(s: dict[str, Any]) -> None:
    s["pciMappings"][0]["map"].append({"host": "h1", "path": "0000:01:00.0"})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_dup_host, "duplicate host 'h2'"),
        (_dup_vmid, "duplicate VMID 9000"),
        (_dup_name, "duplicate guest name 'tmpl'"),
        (_dup_token, "user 'root@pam': duplicate token 'provisiond'"),
        (_dup_pci, "host 'h1': duplicate PCI address '0000:01:00.0'"),
        (_dup_map_entry, "PCI mapping 'gpu': device h1/0000:01:00.0 listed twice"),
        (lambda s: s["storages"][0].update(hosts=["h9"]), "storage 'local': unknown host 'h9'"),
        (
            lambda s: s["storages"][0].update(sizePerHost={"h8": "1G"}),
            "storage 'local': unknown host 'h8'",
        ),
        (
            lambda s: s["pciMappings"][0]["map"].append({"host": "h7", "path": "0000:02:00.0"}),
            "PCI mapping 'gpu': unknown host 'h7'",
        ),
        (
            lambda s: s["pciMappings"][0]["map"].append({"host": "h2", "path": "0000:02:00.0"}),
            "PCI mapping 'gpu': host 'h2' has no device 0000:02:00.0",
        ),
        (
            lambda s: s["pciMappings"][0]["map"][0].update(id="10de:2206"),
            "PCI mapping 'gpu': h1/0000:01:00.0 is 10de:20f1, not 10de:2206",
        ),
        (lambda s: s["vms"][0].update(host="h5"), "VM 100 (vm1): unknown host 'h5'"),
        (lambda s: s["vms"][0].update(pool="q"), "VM 100 (vm1): unknown pool 'q'"),
        (
            lambda s: s["templates"][0].update(host="h2"),
            "VM 9000 (tmpl): storage 'local' is not available on h2",
        ),
        (
            lambda s: s["vms"][0]["disks"].append({"slot": "scsi0", "size": "1G"}),
            "VM 100 (vm1): duplicate disk 'scsi0'",
        ),
        (
            lambda s: s["vms"][0].update(nets=[{"slot": "net0"}, {"slot": "net0"}]),
            "VM 100 (vm1): duplicate NIC 'net0'",
        ),
        (
            lambda s: s["vms"][0].update(storage=None),
            "VM 100 (vm1): disk scsi0 names no storage",
        ),
        (
            lambda s: s["vms"][0]["disks"].append({"slot": "scsi1", "size": "1G", "storage": "x"}),
            "VM 100 (vm1): disk scsi1: storage 'x' not on h1",
        ),
        (
            lambda s: s["vms"][0]["hostpci"].append({"slot": "hostpci0", "mapping": "gpu"}),
            "VM 100 (vm1): duplicate 'hostpci0'",
        ),
        (
            lambda s: s["vms"][0]["hostpci"].append({"slot": "hostpci1", "mapping": "nope"}),
            "VM 100 (vm1): hostpci1: unknown PCI mapping 'nope'",
        ),
        (
            lambda s: s["vms"][0]["hostpci"].append({"slot": "hostpci1", "host": "0000:09:00.0"}),
            "VM 100 (vm1): hostpci1: host 'h1' has no device 0000:09:00.0",
        ),
        (
            lambda s: s["vms"].append(
                {
                    "name": "vm2",
                    "vmid": 101,
                    "host": "h1",
                    "status": "running",
                    "hostpci": [{"slot": "hostpci0", "mapping": "gpu"}],
                }
            ),
            "running VMs on h1 use 2 devices of mapping 'gpu', which has 1 there",
        ),
        (lambda s: s["vms"][0].update(vmid=99), "greater than or equal to 100"),
        (lambda s: s["vms"][0].update(tags=["Bad Tag"]), "invalid tag"),
        (lambda s: s["hosts"][0].update(name="-h"), "invalid host name"),
        (lambda s: s["hosts"][0]["pciDevices"][0].update(address="01:00.0"), "PCI address"),
        (lambda s: s["users"][0].update(id="root"), "user id"),
        (lambda s: s["vms"][0].update(nets=[{"slot": "net0", "mac": "zz"}]), "MAC"),
        (lambda s: s.update(hosts=[]), "at least 1 item"),
    ],
)
def test_invalid_documents(mutate: Any, message: str) -> None:
    assert message in invalid(mutate)


def test_stopped_vms_do_not_claim_devices() -> None:
    data = minimal()
    data["spec"]["vms"].append(
        {
            "name": "vm2",
            "vmid": 101,
            "host": "h1",
            "status": "stopped",
            "hostpci": [{"slot": "hostpci0", "mapping": "gpu"}],
        }
    )
    assert len(Topology.model_validate(data).spec.vms) == 2


def test_unknown_mapping_is_reported_once() -> None:
    msg = invalid(lambda s: s["vms"][0]["hostpci"][0].update(mapping="nope"))
    assert msg.count("nope") == 1


# -- users, tokens, roles, ACLs ------------------------------------------------------------------


def _with_access(s: dict[str, Any]) -> None:
    s["users"].append(
        {"id": "fleet@pve", "password": "pw", "tokens": [{"id": "k3s", "privsep": True}]}
    )
    s["roles"] = [{"id": "Cloner", "privileges": ["VM.Clone", "VM.Audit"]}]
    s["acls"] = [
        {"path": "/pool/p", "roles": ["PVEVMAdmin"], "users": ["fleet@pve"]},
        {"path": "/pool/p", "roles": ["Cloner"], "tokens": ["fleet@pve!k3s"], "propagate": False},
    ]


def test_users_tokens_roles_and_acls() -> None:
    doc = minimal()
    _with_access(doc["spec"])
    t = Topology.model_validate(doc)
    assert t.spec.users[1].tokens[0].privsep is True
    assert t.spec.roles[0].privileges == ("VM.Clone", "VM.Audit")
    assert [(a.path, a.propagate) for a in t.spec.acls] == [("/pool/p", True), ("/pool/p", False)]


def test_builtin_roles_follow_pve_privilege_groups() -> None:
    assert BUILTIN_ROLES["Administrator"] == PRIVILEGES
    assert BUILTIN_ROLES["NoAccess"] == frozenset()
    assert "Mapping.Modify" not in BUILTIN_ROLES["PVEAdmin"]
    assert "Sys.Modify" not in BUILTIN_ROLES["PVEAdmin"]
    assert BUILTIN_ROLES["PVEVMUser"] == {
        "VM.Audit",
        "VM.Backup",
        "VM.Config.CDROM",
        "VM.Config.Cloudinit",
        "VM.Console",
        "VM.PowerMgmt",
    }
    assert BUILTIN_ROLES["PVEMappingUser"] == {"Mapping.Audit", "Mapping.Use"}
    assert BUILTIN_ROLES["PVETemplateUser"] == {"VM.Clone", "VM.Audit"}
    assert "PVESysUser" not in BUILTIN_ROLES  # categories without user privileges have none


def _acl(**kv: Any) -> Any:
    def mutate(s: dict[str, Any]) -> None:
        _with_access(s)
        s["acls"][0].update(kv)

    return mutate


def _role(**kv: Any) -> Any:
    def mutate(s: dict[str, Any]) -> None:
        _with_access(s)
        s["roles"].append({"id": "R", **kv})

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_role(id="Cloner"), "duplicate role 'Cloner'"),
        (_role(id="PVEAdmin"), "role 'PVEAdmin': a built-in role cannot be redefined"),
        (_role(privileges=["VM.Fly"]), "role 'R': unknown privilege 'VM.Fly'"),
        (_role(id="a b"), "invalid role id"),
        (_acl(path="/vms/12"), "ACL '/vms/12': invalid ACL path"),
        (_acl(users=[]), "ACL '/pool/p': names no user or token"),
        (_acl(roles=["Nope"]), "ACL '/pool/p': unknown role 'Nope'"),
        (_acl(users=["x@pve"]), "ACL '/pool/p': unknown user 'x@pve'"),
        (_acl(tokens=["fleet@pve!nope"]), "ACL '/pool/p': unknown token 'fleet@pve!nope'"),
    ],
)
def test_invalid_access_declarations(mutate: Any, message: str) -> None:
    doc = minimal()
    mutate(doc["spec"])
    with pytest.raises(ValidationError, match=re.escape(message)):
        Topology.model_validate(doc)


# -- PVE 9.x: HA rules and the crs option ------------------------------------------------------


def _nine(s: dict[str, Any], *rules: dict[str, Any], **crs: Any) -> None:
    s["pveVersion"] = "9.1"
    s["vms"][0]["hastate"] = "started"
    s["haRules"] = list(rules)
    s["crs"] = crs


def test_ha_rules_and_crs_on_91() -> None:
    data = minimal()
    rule = {"id": "keep", "type": "node-affinity", "resources": [100], "nodes": ["h1:2", "h2"]}
    apart = {"id": "apart", "type": "resource-affinity", "resources": [100], "affinity": "negative"}
    _nine(data["spec"], {**rule, "strict": True}, apart, ha="dynamic", haAutoRebalance=True)
    doc = Topology.model_validate(data)
    assert doc.spec.pve_version == "9.1"
    assert doc.spec.ha_rules[0].node_priorities() == {"h1": 2, "h2": 0}
    assert doc.spec.crs.ha_auto_rebalance_threshold == 0.3
    assert Topology.model_validate(minimal()).spec.pve_version == "8.4"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"type": "node-affinity", "resources": [100]}, "needs 'nodes'"),
        ({"type": "resource-affinity", "resources": [100]}, "needs 'affinity'"),
        ({"type": "node-affinity", "resources": [100], "nodes": ["h1:x"]}, "<node>[:<priority>]"),
    ],
)
def test_ha_rule_fields_of_its_type(rule: dict[str, Any], message: str) -> None:
    assert message in invalid(lambda s: _nine(s, {"id": "rule1", **rule}))


def test_ha_rule_references_and_version() -> None:
    rule = {"id": "keep", "type": "node-affinity", "resources": [100], "nodes": ["h1"]}

    def on_84(s: dict[str, Any]) -> None:
        _nine(s, rule, ha="dynamic")
        s["pveVersion"] = "8.4"

    text = invalid(on_84)
    assert "HA rules exist from PVE 9 on" in text
    assert "'dynamic' and auto-rebalance exist from PVE 9 on" in text

    def wrong(s: dict[str, Any]) -> None:
        _nine(s, rule, {**rule, "nodes": ["h9"]})
        s["vms"][0]["hastate"] = None

    text = invalid(wrong)
    assert "duplicate HA rule 'keep'" in text
    assert "VM 100 is not HA-managed" in text
    assert "unknown host 'h9'" in text
    assert "VM 100 is already in another node affinity rule" in text
