"""Desired states and clone actions for the runtime tests: one fleet, VMs named ``vm<vmid>``
cloned from template 9000 on pve1. Each test file picks its pool and sizes; the executor tests
also their policy."""

from __future__ import annotations

from provisiond.core.actions import Clone
from provisiond.core.desired import (
    DesiredFleet,
    DesiredState,
    DesiredVM,
    Policy,
    TemplateRef,
    ownership_marker,
)

TEMPLATE = 9000


def fleet_state(
    *vmids: int,
    fleet: str = "lab",
    pool: str,
    cores: int,
    memory_mib: int,
    policy: Policy | None = None,
) -> DesiredState:
    vms = tuple(
        DesiredVM(
            fleet=fleet,
            pool=pool,
            name=f"vm{v}",
            vmid=v,
            template=TemplateRef(vmid=TEMPLATE),
            cores=cores,
            memory_mib=memory_mib,
        )
        for v in vmids
    )
    return DesiredState(fleets=(DesiredFleet(fleet, policy or Policy(), vms),))


def clone_action(
    vmid: int,
    *,
    fleet: str,
    pool: str,
    target: str | None,
    storage: str | None,
    name: str | None = None,
    after: tuple[str, ...] = (),
) -> Clone:
    name = name or f"vm{vmid}"
    return Clone(
        id=f"clone:{vmid}",
        reason="missing",
        after=after,
        vmid=vmid,
        name=name,
        fleet=fleet,
        pool=pool,
        template_vmid=TEMPLATE,
        template_host="pve1",
        target=target,
        full=True,
        storage=storage,
        proxmox_pool=None,
        description=ownership_marker(fleet, name),
    )
