"""``hosts_of``: the Proxmox hosts an action acts on (the executor's per-host limit, the plan
report's target column)."""

from __future__ import annotations

from provisiond.core.actions import Clone, Cordon, HaRuleDelete, Migrate, Start, hosts_of
from provisiond.core.hacluster import HaRule


def test_a_migration_acts_on_its_source_then_its_target() -> None:
    move = Migrate(
        id="migrate:101", reason="r", vmid=101, name="a", source="pve1", target="pve2",
        online=True, with_local_disks=False,
    )  # fmt: skip
    assert hosts_of(move) == ("pve1", "pve2")


def test_a_vm_action_acts_on_its_host() -> None:
    assert hosts_of(Start(id="start:101", reason="r", vmid=101, name="a", host="pve3")) == ("pve3",)


def test_node_and_ha_rule_actions_act_on_no_host() -> None:
    assert hosts_of(Cordon(id="cordon:n", reason="r", vmid=101, node="n")) == ()
    rule = HaRule(rule="pd-f-pin-101", type="node-affinity", vmids=frozenset({101}))
    assert hosts_of(HaRuleDelete(id="ha_rule_delete:x", reason="r", fleet="f", rule=rule)) == ()


def test_a_clone_acts_on_its_target_else_the_templates_host() -> None:
    def clone(target: str | None) -> Clone:
        return Clone(
            id="clone:101", reason="r", vmid=101, name="a", fleet="f", pool="p",
            template_vmid=9000, template_host="pve1", target=target, full=True,
            storage=None, proxmox_pool=None, description="provisiond:f/a",
        )  # fmt: skip

    assert hosts_of(clone(None)) == ("pve1",)
    assert hosts_of(clone("pve2")) == ("pve2",)
