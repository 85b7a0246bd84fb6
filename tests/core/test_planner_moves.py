"""The planner's side of node work (issue 16): Proxmox HA maintenance evacuates like
``policy.maintenance``; nodes already out count against the disruption budget (so an
interrupted GPU move holds its place across restarts); a node is uncordoned only once Ready;
and a property over generated worlds: never an online migration of a VM whose mapping cannot
live-migrate, never more nodes out per pool than its budget."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_world import apply, converged, dvm, host, kinds, mapping, state, world

from provisiond.core.actions import Drain, GpuMove, Migrate, Reboot, Shutdown
from provisiond.core.desired import (
    DesiredState,
    DesiredVM,
    GpuRequest,
    KubeNodeSpec,
    PowerState,
)
from provisiond.core.observed import (
    BOOT_ID_ANNOTATION,
    CORDONED_ANNOTATION,
    KubeNode,
    ObservedState,
    ObservedVM,
    VMStatus,
)
from provisiond.core.plan import Plan
from provisiond.core.planner import plan

OURS = {CORDONED_ANNOTATION: "true"}


def gpu(name: str, vmid: int, **kw: object) -> DesiredVM:
    return dvm(name, vmid, gpus=GpuRequest("m", 1), kubernetes=KubeNodeSpec(name), **kw)


def codes(p: Plan) -> list[str]:
    return [b.code for b in p.blocked]


def test_a_host_in_proxmox_ha_maintenance_is_evacuated_and_never_a_target() -> None:
    d = gpu("g", 101)
    hosts = (host("pve1"), host("pve2"), host("pve3"))
    hosts = (replace(hosts[0], maintenance=True), hosts[1], replace(hosts[2], maintenance=True))
    o = world(
        converged(d),
        hosts=hosts,
        mappings=(mapping("m", {"pve1": 1, "pve2": 1, "pve3": 1}),),
        kube=(KubeNode("g"),),
    )
    p = plan(state(d), o, now=0)
    assert kinds(p) == ["gpu_move"]
    move = p.actions[0]
    assert isinstance(move, GpuMove)
    assert (move.source, move.target) == ("pve1", "pve2")
    assert "Proxmox HA maintenance" in move.reason
    assert plan(state(d), apply(o, p), now=0).empty


def test_ha_managed_vms_on_a_host_in_ha_maintenance_are_left_to_the_ha_manager() -> None:
    d = dvm("h", 101)
    hosts = (replace(host("pve1"), maintenance=True), host("pve2"))
    o = world(converged(d, ha_state="started"), hosts=hosts)
    p = plan(state(d), o, now=0)
    assert p.empty  # the HA manager migrates it: provisiond does not race it
    assert [w.reason for w in p.waiting] == [
        "HA-managed: the Proxmox HA manager moves it off pve1 (maintenance)"
    ]
    # the spec's maintenance is provisiond's own: it moves the VM (through HA's migrate request)
    spec = plan(state(d, maintenance=("pve1",)), o, now=0)
    assert kinds(spec) == ["migrate"]


def test_what_cannot_leave_a_maintenance_host_is_reported_not_moved() -> None:
    d = gpu("g", 101)
    o = world(
        converged(d),
        hosts=(replace(host("pve1"), maintenance=True), host("pve2")),
        mappings=(mapping("m", {"pve1": 1}),),  # no device of its mapping elsewhere
        kube=(KubeNode("g"),),
    )
    p = plan(state(d), o, now=0)
    assert p.empty
    assert codes(p) == ["no_target"]


def test_an_interrupted_gpu_move_holds_the_pool_budget_and_resumes_without_repeating() -> None:
    a, b = gpu("a", 101), gpu("b", 102)
    maps = (mapping("m", {"pve1": 2, "pve2": 2}),)
    fresh = world(converged(a), converged(b), mappings=maps, kube=(KubeNode("a"), KubeNode("b")))
    first = plan(state(a, b, maintenance=("pve1",)), fresh, now=0)
    assert kinds(first) == ["gpu_move"]  # the pool's budget is 1
    assert codes(first) == ["disruption_limit"]
    # killed after the shutdown: a stopped on pve1, its node cordoned by provisiond, NotReady
    down = world(
        converged(a, status=VMStatus.STOPPED),
        converged(b),
        mappings=maps,
        kube=(KubeNode("a", unschedulable=True, annotations=OURS, ready=False), KubeNode("b")),
    )
    resumed = plan(state(a, b, maintenance=("pve1",)), down, now=0)
    assert kinds(resumed) == ["migrate", "start"]  # no cordon, drain nor shutdown again
    move = resumed.actions[0]
    assert isinstance(move, Migrate)
    assert not move.online
    assert codes(resumed) == ["disruption_limit"]  # b still waits: a is out
    # a is back on pve2 and running, its node not Ready yet: still out, not uncordoned
    back = world(
        converged(a, on="pve2"),
        converged(b),
        mappings=maps,
        kube=(KubeNode("a", unschedulable=True, annotations=OURS, ready=False), KubeNode("b")),
    )
    waiting = plan(state(a, b, maintenance=("pve1",)), back, now=0)
    assert waiting.empty
    assert codes(waiting) == ["disruption_limit"]
    assert [w.vmid for w in waiting.waiting] == [101]  # not converged: waits for Ready
    # Ready: uncordoned, and only then does b's move start (the next cycle)
    ready = replace(back, kube=(KubeNode("a", unschedulable=True, annotations=OURS), KubeNode("b")))
    assert kinds(plan(state(a, b, maintenance=("pve1",)), ready, now=0)) == ["uncordon"]


def test_a_ready_left_over_from_the_boot_before_the_move_is_not_the_node_back() -> None:
    a = gpu("a", 101)
    maps = (mapping("m", {"pve1": 1, "pve2": 1}),)
    marked = {**OURS, BOOT_ID_ANNOTATION: "boot-1"}
    stale = world(
        converged(a, on="pve2"),
        mappings=maps,
        kube=(KubeNode("a", unschedulable=True, annotations=marked, boot_id="boot-1"),),
    )
    waiting = plan(state(a, maintenance=("pve1",)), stale, now=0)
    assert waiting.empty  # not uncordoned on the Ready the old boot left behind
    assert ["still on the boot before the move" in w.reason for w in waiting.waiting] == [True]
    rebooted = replace(stale, kube=(replace(stale.kube[0], boot_id="boot-2"),))  # type: ignore[index]
    assert kinds(plan(state(a, maintenance=("pve1",)), rebooted, now=0)) == ["uncordon"]
    assert KubeNode("a", boot_id="boot-1").back  # no boot recorded: Ready is enough
    assert not KubeNode("a", ready=False, annotations=marked, boot_id="boot-2").back


def test_a_not_ready_node_that_should_run_counts_but_a_stopped_one_does_not() -> None:
    a, b = gpu("a", 101), gpu("b", 102)
    maps = (mapping("m", {"pve1": 2, "pve2": 2}),)
    sick = world(
        converged(a, on="pve2"),
        converged(b),
        mappings=maps,
        kube=(KubeNode("a", ready=False), KubeNode("b")),
    )
    assert codes(plan(state(a, b, maintenance=("pve1",)), sick, now=0)) == ["disruption_limit"]
    off = replace(a, power=PowerState.STOPPED)
    parked = world(
        converged(a, on="pve2", status=VMStatus.STOPPED),
        converged(b),
        mappings=maps,
        kube=(KubeNode("a", ready=False), KubeNode("b")),
    )
    assert kinds(plan(state(off, b, maintenance=("pve1",)), parked, now=0)) == ["gpu_move"]


# -- property -------------------------------------------------------------------------------------

HOSTS = ("pve1", "pve2", "pve3")


@st.composite
def kube_worlds(draw: st.DrawFn) -> tuple[DesiredState, ObservedState, int]:
    budget = draw(st.integers(1, 2))
    live = draw(st.booleans())
    per_host = {h: draw(st.integers(0, 3)) for h in HOSTS}
    maintenance = tuple(h for h in HOSTS if draw(st.integers(0, 2)) == 0)
    ha = {h for h in HOSTS if draw(st.integers(0, 4)) == 0}
    hosts = tuple(replace(host(h, 32, 256), maintenance=h in ha) for h in HOSTS)
    used = dict.fromkeys(HOSTS, 0)
    desired: list[DesiredVM] = []
    observed: list[ObservedVM] = []
    nodes: list[KubeNode] = []
    for i in range(draw(st.integers(1, 7))):
        on = draw(st.sampled_from(HOSTS))
        has_gpu = draw(st.booleans())
        if has_gpu and used[on] >= per_host[on]:
            continue
        used[on] += has_gpu
        d = dvm(
            f"n{i}",
            100 + i,
            pool=draw(st.sampled_from(("gpu", "cpu"))),
            gpus=GpuRequest("m", 1) if has_gpu else None,
            kubernetes=KubeNodeSpec(f"n{i}"),
            power=PowerState.STOPPED if draw(st.integers(0, 5)) == 0 else PowerState.RUNNING,
            host=draw(st.sampled_from(HOSTS)) if draw(st.integers(0, 5)) == 0 else None,
        )
        status = draw(st.sampled_from((VMStatus.RUNNING, VMStatus.RUNNING, VMStatus.STOPPED)))
        desired.append(d)
        observed.append(converged(d, on=on, status=status))
        cordoned = draw(st.integers(0, 3))
        nodes.append(
            KubeNode(
                d.name,
                unschedulable=cordoned > 0,
                annotations=OURS if cordoned == 2 else {},
                ready=status is VMStatus.RUNNING and draw(st.integers(0, 4)) > 0,
            )
        )
    o = ObservedState(
        hosts=hosts,
        mappings=(mapping("m", per_host, live=live),),
        vms=(*world().vms[:1], *observed),
        kube=tuple(nodes),
    )
    policy = {"max_disruptions_per_pool": budget, "max_disruptions": 10}
    return state(*desired, maintenance=maintenance, **policy), o, budget


def _out_before(d: DesiredVM, n: KubeNode) -> bool:
    ours = n.unschedulable and CORDONED_ANNOTATION in n.annotations
    return ours or (not n.ready and d.power is PowerState.RUNNING)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kube_worlds())
def test_never_online_without_live_mapping_nor_over_the_node_budget(
    world_: tuple[DesiredState, ObservedState, int],
) -> None:
    desired, o, budget = world_
    p = plan(desired, o, now=0)
    vms = {v.vmid: v for v in o.vms}
    live = {m.id: m.live_migration for m in o.mappings}
    by_vmid = {d.vmid: d for d in desired.all_vms()}
    nodes = {n.name: n for n in o.kube or ()}
    out: dict[str, set[int]] = {}
    for d in by_vmid.values():
        if _out_before(d, nodes[d.name]):
            out.setdefault(d.pool, set()).add(d.vmid)
    for a in p.actions:
        vm = vms[a.vmid]
        if isinstance(a, Migrate) and a.online:
            assert all(live[m] for m in vm.gpu_claims()), f"online move of {a.vmid}"
        disrupts = isinstance(a, GpuMove | Shutdown | Reboot | Drain) or (
            isinstance(a, Migrate) and a.online and vm.status is VMStatus.RUNNING
        )
        if disrupts:
            out.setdefault(by_vmid[a.vmid].pool, set()).add(a.vmid)
    for pool, vmids in out.items():
        before = {v for v in vmids if _out_before(by_vmid[v], nodes[by_vmid[v].name])}
        # nodes already out may exceed the budget (a human, a crash); the plan adds none then
        assert len(vmids) <= max(budget, len(before)), (pool, sorted(vmids), budget)


def test_another_machines_node_is_not_counted_as_out() -> None:
    a, b = gpu("a", 101), gpu("b", 102)
    maps = (mapping("m", {"pve1": 2, "pve2": 2}),)
    vm_a = converged(a, on="pve2")
    assert vm_a.config is not None
    vm_a = replace(vm_a, config=replace(vm_a.config, smbios_uuid="uuid-a"))
    other = KubeNode("a", unschedulable=True, annotations=OURS, system_uuid="uuid-x")
    o = world(vm_a, converged(b), mappings=maps, kube=(other, KubeNode("b")))
    p = plan(state(a, b, maintenance=("pve1",)), o, now=0)
    assert kinds(p) == ["gpu_move"]  # b moves: a's "node" is another machine's
    assert [c.vmid for c in p.conflicts] == [101]
