"""HA rule actions (``placement.publishHaRules``) in ``plan``'s text and JSON and in MQTT events."""

from __future__ import annotations

import io

from rich.console import Console

from provisiond.adapters.mqtt_events import action_object
from provisiond.cli.report import plan_to_json, print_plan
from provisiond.core.actions import HaRuleCreate, HaRuleDelete
from provisiond.core.hacluster import NODE_AFFINITY, RESOURCE_AFFINITY, HaRule
from provisiond.core.plan import Plan

PIN = HaRule("pd-lab-pin-104", NODE_AFFINITY, frozenset({104}), (("node04", 0),), True)
SPREAD = HaRule("pd-lab-spread-db", RESOURCE_AFFINITY, frozenset({101, 102}), affinity="negative")
PLAN = Plan(
    actions=(
        HaRuleCreate(id="ha_rule_create:pd-lab-pin-104", reason="publish x", fleet="lab", rule=PIN),
        HaRuleDelete(id="ha_rule_delete:pd-lab-spread-db", reason="off", fleet="lab", rule=SPREAD),
    )
)


def test_plan_json_names_the_rule_and_its_value() -> None:
    [create, delete] = plan_to_json(PLAN)["actions"]
    assert (create["action"], create["vm"], create["vmid"], create["host"]) == (
        "ha_rule_create", "pd-lab-pin-104", None, None,
    )  # fmt: skip
    assert create["details"] == {
        "rule": "pd-lab-pin-104", "type": "node-affinity", "resources": [104],
        "nodes": ["node04"], "strict": True, "affinity": None, "fleet": "lab",
    }  # fmt: skip
    assert delete["details"]["resources"] == [101, 102]
    assert plan_to_json(PLAN)["summary"]["ha_rule_delete"] == 1


def test_plan_text_groups_rule_actions_under_the_rule() -> None:
    out = io.StringIO()
    print_plan(PLAN, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "HA rule pd-lab-pin-104\n  + ha_rule_create: publish x" in text
    assert "HA rule pd-lab-spread-db\n  - ha_rule_delete: off" in text
    assert "Plan: 1 HA rule(s) to create, 1 HA rule(s) to delete" in text


def test_mqtt_object_of_a_rule_action() -> None:
    assert action_object(PLAN.actions[0]) == (
        {"type": "ha_rule", "name": "pd-lab-pin-104", "vmid": None},
        None,
    )
