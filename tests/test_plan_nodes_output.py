"""Kubernetes node actions in ``plan`` text and JSON: one line per node change, with its reason."""

from __future__ import annotations

import io
import json

from rich.console import Console

from provisiond.cli.report import plan_to_json, print_plan
from provisiond.core.actions import Cordon, Drain, Label, TaintNode, Uncordon
from provisiond.core.desired import Taint
from provisiond.core.plan import Plan

GPU = Taint("inferno/gpu", "true", "NoSchedule")
PLAN = Plan(
    actions=(
        Label(
            id="label:w1",
            reason="labels gpu-model=a100, -old",
            node="cit-gpu-w1",
            vmid=1038,
            labels={"gpu-model": "a100"},
            remove=("old",),
            managed="{}",
        ),
        TaintNode(
            id="taint:w1", reason="taints", node="cit-gpu-w1", vmid=1038, add=(GPU,), managed="{}"
        ),
        Cordon(id="cordon:w2", reason="moved offline to pve2", node="cit-gpu-w2", vmid=1039),
        Drain(id="drain:w2", reason="moved offline to pve2", node="cit-gpu-w2", vmid=1039),
        Uncordon(id="uncordon:w3", reason="work finished", node="cit-gpu-w3", vmid=1040),
    )
)


def test_text_has_one_node_line_per_change() -> None:
    out = io.StringIO()
    print_plan(PLAN, Console(file=out, width=200, color_system=None))
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert "~ node cit-gpu-w1 labels +gpu-model=a100, -old" in lines
    assert "~ node cit-gpu-w1 taints +inferno/gpu=true:NoSchedule" in lines
    assert "~ node cit-gpu-w2 cordon: moved offline to pve2" in lines
    assert "~ node cit-gpu-w2 drain: moved offline to pve2" in lines
    assert "~ node cit-gpu-w3 uncordon: work finished" in lines


def test_json_names_the_node_and_carries_reason_and_details() -> None:
    data = json.loads(json.dumps(plan_to_json(PLAN)))
    first = data["actions"][0]
    assert (first["action"], first["vm"], first["vmid"]) == ("label", "cit-gpu-w1", 1038)
    assert first["details"] == {"labels": {"gpu-model": "a100"}, "remove": ["old"]}
    assert first["reason"] == "labels gpu-model=a100, -old"
    assert [a["action"] for a in data["actions"]] == [
        "label",
        "taint",
        "cordon",
        "drain",
        "uncordon",
    ]
    assert all(a["reason"] for a in data["actions"])
