"""Semantic checks and resolution, with plain values (no files): state in, issues or VMs out."""

from __future__ import annotations

from typing import Any

import pytest

from provisiond.core.desired import CloneMode, PowerState, Spread
from provisiond.core.errors import SpecError
from provisiond.core.members import expand, merge
from provisiond.core.resolve import desired_state
from provisiond.core.spec import Fleet, SourcedFleet, VmSettings
from provisiond.core.validation import check

DEFAULTS = {"template": "tmpl", "cores": 2, "memory": "4GiB"}


def _doc(name: str = "lab", defaults: Any = None, **spec: Any) -> SourcedFleet:
    body = {"defaults": DEFAULTS if defaults is None else defaults, **spec}
    fleet = Fleet.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Fleet",
            "metadata": {"name": name},
            "spec": body,
        }
    )
    return SourcedFleet(fleet, f"{name}.yaml")


def _issues(*docs: SourcedFleet) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in check(docs)]


def _pool(**kw: Any) -> dict[str, Any]:
    return {"name": "web", "vms": [{"name": "w1", "vmid": 100}], **kw}


def test_merge_defaults_pool_vm() -> None:
    doc = _doc(
        defaults={
            **DEFAULTS,
            "cloudInit": {"user": "ubuntu", "nameservers": ["1.1.1.1"]},
            "kubernetes": {"labels": {"a": "1", "b": "1"}, "annotations": {"x": "1"}},
            "tags": ["base"],
        },
        pools=[
            {
                "name": "web",
                "templateVmid": 9001,
                "cloudInit": {"user": "admin"},
                "kubernetes": {"labels": {"b": "2"}, "taints": ["t:NoSchedule"]},
                "tags": ["web"],
                "vms": [
                    {
                        "name": "w1",
                        "vmid": 100,
                        "template": "other",
                        "kubernetes": {"labels": {"c": "3"}},
                    },
                    {"name": "w2", "vmid": 101, "power": "stopped", "cloneMode": "linked"},
                ],
            }
        ],
    )
    state = desired_state([doc])
    w1, w2 = state.all_vms()
    assert (w1.template.name, w1.template.vmid) == ("other", None)  # template is one setting
    assert (w2.template.name, w2.template.vmid) == (None, 9001)
    assert w1.kubernetes is not None
    assert dict(w1.kubernetes.labels) == {"a": "1", "b": "2", "c": "3"}
    assert dict(w1.kubernetes.annotations) == {"x": "1"}
    assert [str(t) for t in w1.kubernetes.taints] == ["t:NoSchedule"]
    assert w1.cloud_init is not None
    assert (w1.cloud_init.user, w1.cloud_init.nameservers) == ("admin", ("1.1.1.1",))
    assert w1.cloud_init.ipconfigs == ()
    assert w1.tags == ("web",)  # lists replace
    assert (w1.power, w2.power) == (PowerState.RUNNING, PowerState.STOPPED)
    assert (w1.clone_mode, w2.clone_mode) == (CloneMode.FULL, CloneMode.LINKED)
    assert w1.nics == ()
    assert (w1.allowed_hosts, w1.spread) == (None, Spread.PREFERRED)


def test_merge_keeps_unset_levels_unset() -> None:
    merged = merge(VmSettings(), VmSettings.model_validate({"cores": 3}))
    assert merged.cores == 3
    assert merged.kubernetes is None


def test_count_pool_expansion_and_nics_list() -> None:
    doc = _doc(
        pools=[
            {
                "name": "node",
                "count": 3,
                "namePattern": "node{index:02d}",
                "vmidRange": {"start": 500, "end": 509},
                "nics": [
                    {"bridge": "vmbr0", "vlan": 10},
                    {"bridge": "vmbr1", "model": "e1000", "firewall": True},
                ],
                "placement": {"hosts": ["h1", "h2", "h3"], "spread": "strict"},
                "kubernetes": {"node": False},
                "disks": [{"slot": "scsi0", "size": "32GiB", "storage": "fast"}],
            }
        ]
    )
    vms = desired_state([doc]).all_vms()
    assert [(vm.name, vm.vmid, vm.index) for vm in vms] == [
        ("node01", 500, 1),
        ("node02", 501, 2),
        ("node03", 502, 3),
    ]
    assert vms[0].nics[1].model == "e1000"
    assert vms[0].nics[1].firewall is True
    assert vms[0].nics[0].vlan == 10
    assert vms[0].allowed_hosts == ("h1", "h2", "h3")
    assert vms[0].spread is Spread.STRICT
    assert vms[0].kubernetes is None
    assert vms[0].disks[0].size_bytes == 32 << 30


def test_vm_without_kubernetes_section_is_a_node_named_like_the_vm() -> None:
    (vm,) = desired_state([_doc(pools=[_pool(ip="dhcp")])]).all_vms()
    assert vm.kubernetes is not None
    assert vm.kubernetes.node_name == "w1"
    assert vm.cloud_init is not None
    assert vm.cloud_init.ipconfigs[0].ip == "dhcp"
    assert vm.nics == ()  # no bridge: the template's NICs stay as they are


def test_resolution_refuses_invalid_documents() -> None:
    with pytest.raises(SpecError) as exc:
        desired_state([_doc(pools=[])])
    assert "declares no VMs" in str(exc.value)
    assert desired_state([_doc(pools=[], policy={"allowEmpty": True})]).all_vms() == ()


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ({"pools": [_pool(), _pool()]}, "spec.pools[1].name", "duplicate pool name 'web'"),
        ({"placement": {"hosts": []}, "pools": [_pool()]}, "spec.placement.hosts", "no host"),
        (
            {"pools": [_pool(placement={"hosts": []})]},
            "spec.pools[0].placement.hosts",
            "no host is allowed",
        ),
        (
            {"pools": [_pool(vmidRange={"start": 100, "end": 101}, namePattern="x{index}")]},
            "spec.pools[0].namePattern",
            "namePattern goes with count",
        ),
        ({"pools": [{"name": "web"}]}, "spec.pools[0]", "pool 'web' has no VMs"),
        (
            {"pools": [{"name": "web", "count": 1, "vmidRange": {"start": 100, "end": 100}}]},
            "spec.pools[0].count",
            "count needs namePattern",
        ),
        (
            {
                "pools": [
                    {
                        "name": "w",
                        "count": 2,
                        "namePattern": "w{index}",
                        "vmidRange": {"start": 200, "end": 100},
                    }
                ]
            },
            "spec.pools[0].vmidRange.end",
            "vmidRange end 100 is below its start 200",
        ),
        (
            {
                "pools": [
                    {
                        "name": "w",
                        "count": 2,
                        "namePattern": "w{index",
                        "vmidRange": {"start": 200, "end": 300},
                    }
                ]
            },
            "spec.pools[0].namePattern",
            "is not a valid pattern",
        ),
        (
            {
                "pools": [
                    {
                        "name": "w",
                        "count": 2,
                        "namePattern": "w{index}{other}",
                        "vmidRange": {"start": 200, "end": 300},
                    }
                ]
            },
            "spec.pools[0].namePattern",
            "must use {index}",
        ),
        (
            {
                "pools": [
                    {
                        "name": "w",
                        "count": 2,
                        "namePattern": "w{index:q}",
                        "vmidRange": {"start": 200, "end": 300},
                    }
                ]
            },
            "spec.pools[0].namePattern",
            "cannot format index 1",
        ),
        (
            {
                "pools": [
                    {
                        "name": "w",
                        "count": 2,
                        "namePattern": "w_{index}",
                        "vmidRange": {"start": 200, "end": 300},
                    }
                ]
            },
            "spec.pools[0].namePattern",
            "gives 'w_1', not a valid VM name",
        ),
        ({"pools": [_pool(cores=None)]}, "", ""),
        (
            {"pools": [_pool(disks=[{"slot": "scsi0", "size": "1GiB"}] * 2)]},
            "spec.pools[0].disks[1].slot",
            "appears twice",
        ),
        ({"pools": [_pool(memory="16385KiB")]}, "spec.pools[0].memory", "whole number of MiB"),
        ({"pools": [_pool(tags=["provisiond"])]}, "spec.pools[0].tags[0]", "is reserved"),
        ({"pools": [_pool(vlan=5)]}, "spec.pools[0].vlan", "sets vlan but no bridge for net0"),
        (
            {"pools": [_pool(gateway="10.0.0.1")]},
            "spec.pools[0].gateway",
            "has a gateway but no ip",
        ),
        ({"pools": [_pool(ip="dhcp", gateway="10.0.0.1")]}, "spec.pools[0].gateway", "uses dhcp"),
        (
            {"pools": [_pool(kubernetes={"nodeName": "Bad_Name"})]},
            "spec.pools[0].kubernetes.nodeName",
            "node name 'Bad_Name'",
        ),
        (
            {"pools": [_pool(vms=[{"name": "W1", "vmid": 100}])]},
            "spec.pools[0].vms[0].kubernetes" if False else "spec.pools[0].vms[0]",
            "is a Kubernetes node and its name is the node name",
        ),
        (
            {"pools": [_pool(kubernetes={"annotations": {"a/b/c": "x"}})]},
            'spec.pools[0].kubernetes.annotations["a/b/c"]',
            "annotation key 'a/b/c'",
        ),
        (
            {"pools": [_pool(kubernetes={"annotations": {"a": "x" * 262144}})]},
            "spec.pools[0].kubernetes.annotations",
            "annotations may not have more than",
        ),
    ],
)
def test_semantic_issues(spec: dict[str, Any], path: str, fragment: str) -> None:
    issues = _issues(_doc(**spec))
    if not fragment:  # an unset value inside a pool just means "inherit": still valid
        assert issues == []
        return
    assert any(p == path and fragment in m for p, m in issues), issues


def test_settings_missing_everywhere() -> None:
    issues = _issues(_doc(defaults={}, pools=[_pool()]))
    assert [m.split(":")[0] for _p, m in issues] == [
        "w1 has no template",
        "w1 has no cores",
        "w1 has no memory",
    ]


def test_nics_from_one_level_and_shorthand_from_another() -> None:
    doc = _doc(
        defaults={**DEFAULTS, "bridge": "vmbr0"},
        pools=[_pool(nics=[{"bridge": "vmbr1"}])],
    )
    ((path, message),) = _issues(doc)
    assert path == "spec.defaults.bridge"
    assert message.startswith("w1 gets nics from spec.pools[0].nics and the net0 shorthand bridge")


def test_duplicates_across_fleets_and_generated_pools() -> None:
    a = _doc(
        "a",
        pools=[
            {
                "name": "n",
                "count": 3,
                "namePattern": "n{index}",
                "vmidRange": {"start": 100, "end": 102},
                "bridge": "vmbr0",
                "mac": "02:00:00:00:00:01",
                "ip": "10.0.0.1/24",
            }
        ],
    )
    b = _doc(
        "b", pools=[_pool(vms=[{"name": "n1", "vmid": 101, "kubernetes": {"nodeName": "n2"}}])]
    )
    issues = _issues(a, b)
    assert sorted(issues) == sorted(
        [
            (
                "spec.pools[0].mac",
                "duplicate MAC 02:00:00:00:00:01: n2 and n1 (fleet a, a.yaml) both have it",
            ),
            ("spec.pools[0].ip", "duplicate IP 10.0.0.1: n2 and n1 (fleet a, a.yaml) both have it"),
            (
                "spec.pools[0].vms[0].name",
                "duplicate VM name n1: n1 and n1 (fleet a, a.yaml) both have it",
            ),
            (
                "spec.pools[0].vms[0].vmid",
                "duplicate VMID 101: n1 and n2 (fleet a, a.yaml) both have it",
            ),
            (
                "spec.pools[0].vms[0].kubernetes.nodeName",
                "duplicate Kubernetes node name n2: n1 and n2 (fleet a, a.yaml) both have it",
            ),
        ]
    )


def test_nic_macs_are_unique_too() -> None:
    nics = [
        {"bridge": "vmbr0", "mac": "02:00:00:00:00:01"},
        {"bridge": "vmbr1", "mac": "02:00:00:00:00:01"},
    ]
    ((path, message),) = _issues(_doc(pools=[_pool(nics=nics)]))
    assert path == "spec.pools[0].nics[1].mac"
    assert message.startswith("duplicate MAC 02:00:00:00:00:01")


def test_fleet_placement_strict_spread_without_hosts_is_not_judged() -> None:
    doc = _doc(placement={"spread": "strict"}, pools=[_pool()])
    assert _issues(doc) == []


def test_members_of_a_broken_pool() -> None:
    doc = _doc(
        pools=[
            {
                "name": "w",
                "count": 2,
                "namePattern": "w{nope}",
                "vmidRange": {"start": 100, "end": 101},
            }
        ]
    )
    assert expand(doc.fleet) == ()
    (member,) = expand(_doc(pools=[_pool()]).fleet)
    assert member.origin("host") == ("spec", "pools", 0, "vms", 0)
