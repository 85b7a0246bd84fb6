"""The fleet gauges from plain observations and plans (pure: values in, values out)."""

from __future__ import annotations

from typing import get_args

from provisiond.adapters.gauges import (
    ACTION_KINDS,
    DRIFT_KINDS,
    blocked_guards,
    drift_by_kind,
    fleet_gauges,
    gpu_devices,
    host_allocation,
)
from provisiond.core.actions import (
    Action,
    Clone,
    Configure,
    GpuMove,
    Label,
    Migrate,
    MoveStep,
    Start,
)
from provisiond.core.observed import (
    Host,
    HostPci,
    MappingEntry,
    ObservedState,
    ObservedVM,
    PciMapping,
    VMConfig,
    VMStatus,
)
from provisiond.core.plan import Blocked, Conflict, Plan, Waiting

A100 = PciMapping(
    "a100",
    (
        MappingEntry("gpu1", tuple(f"0000:{i:02x}:00.0" for i in range(8))),
        MappingEntry("gpu2", ("0000:01:00.0",)),
    ),
)


def vm(
    vmid: int,
    host: str,
    *,
    gpus: int = 0,
    cores: int = 4,
    mem: int = 8192,
    pending: int | None = None,
    template: bool = False,
) -> ObservedVM:
    def cfg(n: int) -> VMConfig:
        return VMConfig(
            cores=cores, memory_mib=mem, hostpci={i: HostPci(i, mapping="a100") for i in range(n)}
        )

    return ObservedVM(
        vmid,
        f"vm{vmid}",
        host,
        VMStatus.RUNNING,
        cores,
        mem,
        template=template,
        config=cfg(gpus),
        pending=cfg(pending) if pending is not None else None,
    )


HOSTS = (Host("gpu1", True, 32, 262144), Host("gpu2", True, 16, 65536), Host("down", False, 0, 0))


def test_drift_counts_objects_per_kind_and_every_kind_is_present() -> None:
    plan = Plan(
        actions=(
            Clone(
                id="c",
                reason="r",
                vmid=1,
                name="a",
                fleet="f",
                pool="p",
                template_vmid=9,
                template_host="h",
                target=None,
                full=False,
                storage=None,
                proxmox_pool=None,
                description="",
            ),
            Configure(id="k1", reason="r", vmid=1, name="a", host="h"),
            Configure(id="k2", reason="r", vmid=2, name="b", host="h"),
            Label(id="l", reason="r", node="n", vmid=2, managed=""),
        ),
        blocked=(
            Blocked("disruption_limit", "r", 3),
            Blocked("destroy_limit", "r", fleet="f"),
            Blocked("destroy_limit", "r", fleet="g"),
        ),
        conflicts=(Conflict("r", 4, "d", "f"),),
        waiting=(Waiting("clone under way", 5, "e"),),
    )
    drift = drift_by_kind(plan)
    assert set(drift) == set(DRIFT_KINDS)
    assert {k: n for k, n in drift.items() if n} == {
        "clone": 1,
        "configure": 2,
        "label": 1,
        "blocked": 3,
        "conflict": 1,
    }
    assert blocked_guards(plan) == ["disruption_limit", "destroy_limit", "destroy_limit"]
    assert sum(drift_by_kind(Plan(waiting=plan.waiting)).values()) == 0  # under way: not drift


def test_action_kinds_cover_the_whole_action_union() -> None:
    assert {
        "clone",
        "configure",
        "migrate",
        "gpu_move",
        "destroy",
        "label",
        "taint",
        "start",
        "ha_rule_delete",
    } <= set(ACTION_KINDS)
    # one kind per member of the closed union, none twice
    assert len(ACTION_KINDS) == len(set(ACTION_KINDS)) == len(get_args(Action))


def test_gpus_claimed_reserved_and_free_per_host_and_mapping() -> None:
    observed = ObservedState(
        hosts=HOSTS,
        mappings=(A100,),
        vms=(
            vm(100, "gpu1", gpus=2),
            vm(101, "gpu1", gpus=1, pending=2),  # a pending hostpci claims too
            vm(102, "gpu2", gpus=1),
            vm(9000, "gpu1", gpus=1, template=True),  # templates hold nothing
        ),
    )
    plan = Plan(
        actions=(
            # a new VM's config write brings 2 GPUs to gpu1; an existing VM grows from 2 to 3
            Configure(
                id="a",
                reason="r",
                vmid=200,
                name="n",
                host="gpu1",
                values={"hostpci0": "mapping=a100", "hostpci1": "mapping=a100,pcie=1"},
            ),
            Configure(
                id="b",
                reason="r",
                vmid=100,
                name="n",
                host="gpu1",
                values={"hostpci2": "mapping=a100"},
            ),
            # removing a GPU reserves nothing
            Configure(id="c", reason="r", vmid=101, name="n", host="gpu1", delete=("hostpci1",)),
            Start(id="s", reason="r", vmid=100, name="n", host="gpu1"),
        )
    )
    g = gpu_devices(observed, plan)
    assert g == {
        ("gpu1", "a100", "claimed"): 4,
        ("gpu1", "a100", "reserved"): 3,
        ("gpu1", "a100", "free"): 1,
        ("gpu2", "a100", "claimed"): 1,
        ("gpu2", "a100", "reserved"): 0,
        ("gpu2", "a100", "free"): 0,
    }


def test_a_migration_reserves_on_its_target_and_free_never_goes_negative() -> None:
    observed = ObservedState(hosts=HOSTS, mappings=(A100,), vms=(vm(100, "gpu1", gpus=2),))
    plan = Plan(
        actions=(
            GpuMove(
                id="m",
                reason="r",
                vmid=100,
                name="n",
                source="gpu1",
                target="gpu2",
                node=None,
                steps=(MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE),
            ),
            Migrate(
                id="x", reason="r", vmid=999, name="gone", source="gpu1", target="gpu2", online=True
            ),
        )
    )
    g = gpu_devices(observed, plan)
    assert g[("gpu2", "a100", "reserved")] == 2
    assert g[("gpu2", "a100", "free")] == 0
    assert g[("gpu1", "a100", "claimed")] == 2


def test_host_allocation_is_over_physical_capacity_and_skips_unknown_hosts() -> None:
    observed = ObservedState(
        hosts=HOSTS,
        vms=(
            vm(1, "gpu2", cores=12, mem=40960),
            vm(2, "gpu2", cores=6, mem=26624),
            vm(3, "down", cores=2),
        ),
    )
    a = host_allocation(observed)
    assert a[("gpu2", "cpu")] == 18 / 16  # the research lab's 18/16 vCPU host
    assert a[("gpu2", "memory")] == 67584 / 65536
    assert a[("gpu1", "cpu")] == 0.0
    assert ("down", "cpu") not in a


def test_fleet_gauges_bundles_the_three() -> None:
    observed = ObservedState(hosts=HOSTS, mappings=(A100,), vms=(vm(100, "gpu1", gpus=8),))
    g = fleet_gauges(observed, Plan())
    assert g.gpus[("gpu1", "a100", "free")] == 0
    assert g.gpus[("gpu1", "a100", "claimed")] == 8
    assert sum(g.drift.values()) == 0
    assert g.allocation[("gpu1", "cpu")] == 4 / 32
