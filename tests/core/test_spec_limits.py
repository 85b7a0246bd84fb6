"""Limits and bounds with plain values (no files): sizes before expansion, Proxmox's value
bounds, and the values a cluster could never hold."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisiond.core.hostbounds import (
    ClusterBounds,
    HostBound,
    StorageBound,
    check_member,
    cluster_bounds,
)
from provisiond.core.limits import SpecLimits, check_disk_size, check_memory
from provisiond.core.members import expand
from provisiond.core.spec import Fleet, SourcedFleet
from provisiond.core.topology import Topology
from provisiond.core.validation import check

GIB = 1 << 30
DEFAULTS = {"template": "tmpl", "cores": 2, "memory": "4GiB"}


def _fleet(name: str = "lab", **spec: Any) -> Fleet:
    return Fleet.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Fleet",
            "metadata": {"name": name},
            "spec": {"defaults": DEFAULTS} | spec,
        }
    )


def _doc(name: str = "lab", *, storage: str | None = None, **spec: Any) -> SourcedFleet:
    if storage is not None:
        spec["defaults"] = {**DEFAULTS, "storage": storage}
    return SourcedFleet(_fleet(name, **spec), f"{name}.yaml")


def _counted(name: str, count: int, start: int) -> dict[str, Any]:
    return {
        "name": name,
        "count": count,
        "namePattern": name + "{index}",
        "vmidRange": {"start": start, "end": 999_999_999},
    }


# --- Proxmox's value bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("15MiB", "memory '15MiB' is below 16MiB, the least Proxmox gives a VM"),
        ("4097GiB", "memory '4097GiB' is more than 4TiB, the most Proxmox gives one VM"),
        ("1048576TiB", "memory '1048576TiB' is more than 4TiB"),
    ],
)
def test_memory_bounds(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        check_memory(value)
    with pytest.raises(ValidationError, match=message):
        _fleet(pools=[{"name": "web", "memory": value, "vms": [{"name": "w", "vmid": 100}]}])


def test_values_within_the_bounds() -> None:
    check_memory("16MiB")
    check_memory("4TiB")
    check_disk_size("1024TiB")
    with pytest.raises(ValueError, match="disk size '1025TiB' is more than 1024TiB"):
        check_disk_size("1025TiB")


@pytest.mark.parametrize(
    ("memory", "fragment"),
    [
        (4096, "Input should be a valid string"),  # strict: not a size, not a bound
        ("16Gb", "did you mean '16GiB'?"),  # the format error, reported once
    ],
)
def test_a_malformed_memory_is_one_error_not_two(memory: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _fleet(pools=[{"name": "web", "memory": memory, "vms": [{"name": "w", "vmid": 100}]}])
    assert caught.value.error_count() == 1
    assert fragment in str(caught.value)


# --- sizes, before anything expands -------------------------------------------------------------


def test_a_huge_count_is_refused_without_expanding() -> None:
    doc = _doc(pools=[_counted("web", 900_000_000, 100)])
    issues = check([doc])
    assert [(i.path, i.message) for i in issues] == [
        (
            "spec.pools[0].count",
            "pool 'web' declares 900000000 VMs, more than the 10000 a pool may have "
            "(docs/fleet-spec.md, Limits)",
        )
    ]


def test_listed_vms_count_too() -> None:
    vms = [{"name": f"w{i}", "vmid": 100 + i} for i in range(4)]
    issues = check(
        [_doc(pools=[{"name": "web", "vms": vms}])], limits=SpecLimits(max_vms_per_pool=3)
    )
    assert [i.path for i in issues] == ["spec.pools[0].vms"]


def test_the_total_points_at_the_pool_that_crosses_it() -> None:
    limits = SpecLimits(max_vms_per_pool=10, max_vms=10)
    a = _doc("a", pools=[_counted("web", 6, 100), _counted("db", 3, 200)])
    b = _doc("b", pools=[_counted("x", 2, 300), _counted("y", 5, 400)])
    issues = check([a, b], limits=limits)
    assert [(i.file, i.path, i.message) for i in issues] == [
        (
            "b.yaml",
            "spec.pools[0].count",
            "the fleets declare 16 VMs in total, more than the 10 provisiond manages "
            "(docs/fleet-spec.md, Limits); VMs 1-9 come before this pool",
        )
    ]
    # Within the limits, the usual checks run (an empty pool has no VMs to count).
    assert check([a], limits=limits) == []


def test_beyond_a_limit_fleet_names_are_still_checked() -> None:
    a = _doc("a", pools=[_counted("web", 20_000, 100)])
    b = _doc("a", pools=[_counted("db", 1, 50_000)])
    assert [i.path for i in check([a, b])] == ["spec.pools[0].count", "metadata.name"]


# --- what a cluster could hold ------------------------------------------------------------------


def _topology() -> Topology:
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "lab"},
            "spec": {
                "hosts": [
                    {"name": "small", "cpus": 8, "memory": "32GiB"},
                    {"name": "big", "cpus": 64, "memory": "512GiB"},
                ],
                "storages": [
                    {
                        "name": "local",
                        "type": "lvmthin",
                        "size": "1TiB",
                        "sizePerHost": {"big": "4TiB"},
                    },
                    {"name": "nfs", "type": "nfs", "shared": True, "size": "20TiB"},
                ],
            },
        }
    )


def _cluster(doc: SourcedFleet) -> ClusterBounds:
    return cluster_bounds([_topology()], "topology.yaml")


def test_cluster_bounds_take_the_largest_instance_of_a_storage() -> None:
    bounds = cluster_bounds([_topology()], "t.yaml")
    assert bounds.hosts == (HostBound("small", 8, 32 * GIB), HostBound("big", 64, 512 * GIB))
    assert bounds.storages == (StorageBound("local", 4096 * GIB), StorageBound("nfs", 20480 * GIB))


def test_values_beyond_the_cluster_with_their_paths() -> None:
    doc = _doc(
        storage="local",
        pools=[
            {
                "name": "web",
                "cores": 65,
                "memory": "600GiB",
                "disks": [
                    {"slot": "scsi0", "size": "5TiB"},  # on the VM's storage, local: 4TiB
                    {"slot": "scsi1", "size": "30TiB", "storage": "nfs"},
                    {"slot": "scsi2", "size": "21TiB", "storage": "elsewhere"},  # > largest
                    {"slot": "scsi3", "size": "20TiB", "storage": "nfs"},  # fits
                ],
                "vms": [{"name": "w1", "vmid": 100}, {"name": "w2", "vmid": 101}],
            }
        ],
    )
    issues = [(i.path, i.message) for i in check([doc], cluster_of=_cluster)]
    assert issues == [  # once per pool-level value, not once per VM
        (
            "spec.pools[0].cores",
            "65 cores are more than the largest host the VM may use has: big has 64 logical CPUs "
            "(topology.yaml); Proxmox does not start a VM with more vCPUs than its host has",
        ),
        (
            "spec.pools[0].disks[0].size",
            "disk scsi0 of 5TiB is larger than storage local holds (4TiB, topology.yaml); disks "
            "grow and never shrink",
        ),
        (
            "spec.pools[0].disks[1].size",
            "disk scsi1 of 30TiB is larger than storage nfs holds (20TiB, topology.yaml); disks "
            "grow and never shrink",
        ),
        (
            "spec.pools[0].disks[2].size",
            "disk scsi2 of 21TiB is larger than the largest storage, nfs, holds (20TiB, "
            "topology.yaml); disks grow and never shrink",
        ),
        (
            "spec.pools[0].memory",
            "memory 600GiB is more than the largest host the VM may use could hold: big has "
            "512GiB (topology.yaml)",
        ),
    ]


def test_placement_pins_and_overcommit_decide_the_hosts() -> None:
    doc = _doc(
        placement={"hosts": ["small"]},
        policy={"overcommit": {"memory": 1.5}},
        pools=[
            # fleet placement: small only (8 CPUs, 32GiB x 1.5 = 48GiB)
            {"name": "a", "cores": 9, "memory": "48GiB", "vms": [{"name": "a1", "vmid": 100}]},
            # the pool's own placement overrides the fleet's
            {
                "name": "b",
                "placement": {"hosts": ["big"]},
                "cores": 64,
                "memory": "769GiB",
                "vms": [{"name": "b1", "vmid": 200}],
            },
            # a pin to a host the topology does not know: every host counts
            {
                "name": "c",
                "host": "gone",
                "placement": {"hosts": ["gone"]},
                "cores": 64,
                "vms": [{"name": "c1", "vmid": 300}],
            },
            # a count pool: one report for the pool
            {**_counted("d", 3, 400), "cores": 16},
        ],
    )
    issues = [(i.path, i.message) for i in check([doc], cluster_of=_cluster)]
    assert issues == [
        (
            "spec.pools[0].cores",
            "9 cores are more than the largest host the VM may use has: small has 8 logical CPUs "
            "(topology.yaml); Proxmox does not start a VM with more vCPUs than its host has",
        ),
        (
            "spec.pools[1].memory",
            "memory 769GiB is more than the largest host the VM may use could hold: big has "
            "512GiB x overcommit.memory 1.5 (topology.yaml)",
        ),
        (
            "spec.pools[3].cores",
            "16 cores are more than the largest host the VM may use has: small has 8 logical "
            "CPUs (topology.yaml); Proxmox does not start a VM with more vCPUs than its host has",
        ),
    ]


def test_a_unit_slip_gets_a_suggestion() -> None:
    bounds = ClusterBounds(
        "t.yaml", (HostBound("h", 4, 16 * GIB),), (StorageBound("ss", 2 * 10**12),)
    )
    doc = _doc(
        pools=[
            {
                "name": "web",
                "memory": "2TiB",
                "disks": [{"slot": "scsi0", "size": "100TiB", "storage": "ss"}],
                "vms": [{"name": "w1", "vmid": 100}],
            }
        ]
    )
    [member] = expand(doc.fleet)
    found = list(check_member(member, bounds, allowed=None, memory_overcommit=1.0))
    assert [message for _path, message in found] == [
        "memory 2TiB is more than the largest host the VM may use could hold: h has 16GiB "
        "(t.yaml); did you mean '2GiB'?",
        "disk scsi0 of 100TiB is larger than storage ss holds (1.8TiB, t.yaml); disks grow and "
        "never shrink; did you mean '100GiB'?",
    ]


@pytest.mark.parametrize(
    ("memory", "host_memory", "suffix"),
    [
        ("20GiB", 16 * GIB, ""),  # a little over: no unit slip
        ("900000KiB", 1 << 20, ""),  # KiB has no smaller unit
        ("4000MiB", 1 << 20, ""),  # the smaller unit does not fit either
        ("3000MiB", 3 * (1 << 20) + 512, " (t.yaml); did you mean '3000KiB'?"),
    ],
)
def test_suggestions_only_for_a_slip_that_fits(memory: str, host_memory: int, suffix: str) -> None:
    bounds = ClusterBounds("t.yaml", (HostBound("h", 4, host_memory),), ())
    doc = _doc(pools=[{"name": "web", "memory": memory, "vms": [{"name": "w", "vmid": 100}]}])
    [member] = expand(doc.fleet)
    [(path, message)] = check_member(member, bounds, allowed=None, memory_overcommit=1.0)
    assert path == ("spec", "pools", 0, "memory")
    assert message.endswith(suffix or "(t.yaml)")


def test_unset_values_are_not_bounded() -> None:
    doc = _doc(
        defaults={"template": "t"}, pools=[{"name": "web", "vms": [{"name": "w", "vmid": 100}]}]
    )
    [member] = expand(doc.fleet)
    bounds = cluster_bounds([_topology()], "t.yaml")
    assert list(check_member(member, bounds, allowed=None, memory_overcommit=1)) == []


def test_bounds_without_hosts_or_storages_check_nothing() -> None:
    doc = _doc(
        pools=[
            {
                "name": "web",
                "disks": [{"slot": "scsi0", "size": "1000TiB"}],
                "vms": [{"name": "w", "vmid": 100}],
            }
        ]
    )
    [member] = expand(doc.fleet)
    assert (
        list(check_member(member, ClusterBounds("t", (), ()), allowed=None, memory_overcommit=1))
        == []
    )
