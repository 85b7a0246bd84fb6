"""The planner's Kubernetes node matching and reports: systemUUID, nodes not joined, nodes
without a VM (tables: desired + observed in, actions and reports out)."""

from __future__ import annotations

from dataclasses import replace

from plan_world import converged, dvm, kinds, state, world

from provisiond.core.desired import KubeNodeSpec
from provisiond.core.observed import MANAGED_ANNOTATION, KubeNode, ObservedVM, Unobserved
from provisiond.core.planner import plan

A = dvm("a", 101, kubernetes=KubeNodeSpec("a", labels=(("role", "gpu"),)))
UUID = "0d2b3c4e-aaaa-bbbb-cccc-000000000001"


def _vm(uuid: str | None = UUID, **kw: object) -> ObservedVM:
    vm = converged(A, **kw)
    assert vm.config is not None
    return replace(vm, config=replace(vm.config, smbios_uuid=uuid))


def test_a_node_of_another_machine_is_a_conflict_and_left_alone() -> None:
    node = KubeNode("a", system_uuid="ffffffff-0000-0000-0000-000000000000")
    p = plan(state(A), world(_vm(), kube=(node,)), now=0)
    assert p.empty
    assert [c.vmid for c in p.conflicts] == [101]
    assert "not this VM" in p.conflicts[0].reason


def test_a_matching_or_unknown_uuid_is_this_vms_node() -> None:
    for node_uuid, vm_uuid in [(UUID, UUID), (None, UUID), (UUID, None)]:
        node = KubeNode("a", system_uuid=node_uuid)
        p = plan(state(A), world(_vm(vm_uuid), kube=(node,)), now=0)
        assert kinds(p) == ["label"], (node_uuid, vm_uuid)
        assert not p.conflicts


def test_a_running_vm_waits_for_its_node_then_reports_it_not_joined() -> None:
    young = plan(state(A), world(_vm(uptime=30), kube=()), now=0, node_join_timeout=600)
    assert young.empty
    assert [w.reason for w in young.waiting] == ["waiting for node a to join Kubernetes"]
    unknown = plan(state(A), world(_vm(uptime=None), kube=()), now=0)
    assert len(unknown.waiting) == 1
    old = plan(state(A), world(_vm(uptime=600), kube=()), now=0, node_join_timeout=600)
    assert not old.waiting
    assert [(b.code, b.vmid) for b in old.blocked] == [("node_not_joined", 101)]


def test_no_wait_without_kubernetes_or_for_a_stopped_vm_or_a_paused_node() -> None:
    assert not plan(state(A), world(_vm()), now=0).waiting
    stopped = replace(A, power=A.power.STOPPED)
    assert not plan(state(stopped), world(converged(stopped), kube=()), now=0).waiting
    paused = KubeNode("a", annotations={"provisiond.dev/paused": "true"})
    p = plan(state(A), world(_vm(), kube=(paused,)), now=0)
    assert p.empty
    assert not p.waiting


def test_kubernetes_unreadable_makes_node_actions_wait_as_not_observed() -> None:
    """A configured Kubernetes that could not be read is not "no Kubernetes": every VM with a
    node waits on it, running or stopped; a VM that is not a node does not."""
    plain = dvm("p", 102)
    stopped = replace(A, name="s", vmid=103, power=A.power.STOPPED, kubernetes=KubeNodeSpec("s"))
    unread = Unobserved(kubernetes=True)
    o = world(_vm(), converged(plain), converged(stopped), unobserved=unread)
    p = plan(state(A, plain, stopped), o, now=0)
    assert p.empty
    assert not p.blocked
    assert [(w.vmid, w.reason) for w in p.waiting] == [
        (101, "not observed: kubernetes nodes (labels, taints and uncordon of node a wait)"),
        (103, "not observed: kubernetes nodes (labels, taints and uncordon of node s wait)"),
    ]


def test_nodes_without_a_vm_are_reported() -> None:
    b = dvm("b", 102, kubernetes=KubeNodeSpec("b"))
    managed = {MANAGED_ANNOTATION: '{"labels":[],"taints":[]}'}
    nodes = (
        KubeNode("a", labels={"role": "gpu"}),
        KubeNode("b"),  # b's VM does not exist (about to be cloned)
        KubeNode("stray", annotations=managed),  # ours once, named by no VM now
        KubeNode("theirs"),  # never ours: not reported
    )
    p = plan(state(A, b), world(_vm(), kube=nodes), now=0)
    assert sorted((x.code, x.name) for x in p.blocked) == [
        ("node_without_vm", "b"),
        ("node_without_vm", "stray"),
    ]
    failed = world(_vm(), kube=nodes, unobserved=Unobserved(lists=("cluster/resources",)))
    assert not [x for x in plan(state(A, b), failed, now=0).blocked if x.code == "node_without_vm"]
