"""PVE 9.x: the daemon publishes the spec's placement as HA rules it owns (``placement.
publishHaRules``), in-process against the 9.1 simulator through the real proxmoxer client.

- the first cycle creates the rules (strict spread → negative resource affinity, a pin →
  strict node affinity), the next cycle plans nothing and makes zero mutating requests;
- a rule someone else made — one with our very id but without our comment marker, and one
  with a look-alike id — is never written: a conflict, byte for byte unchanged;
- a spec change (one more strict-spread member) updates ours; removing the flag deletes ours,
  one per cycle, and nothing else.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2e_support import EXECUTOR, TIME_SCALE
from ruamel.yaml import YAML

from provisiond import app
from provisiond.core.actions import HA_RULES_VMID, HaRuleCreate, HaRuleDelete, HaRuleUpdate
from provisiond.core.hacluster import NODE_AFFINITY, RESOURCE_AFFINITY, HaRule
from provisiond.core.plan import Plan
from provisiond.core.topology import Topology
from provisiond.runtime.executor import Executor
from provisiond.runtime.results import Outcome
from provisiond.settings import Settings
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

MARKER = "provisiond:lab published from the fleet spec; edits are overwritten"
THEIRS = {  # our id, not our marker
    "id": "pd-lab-spread-web", "type": "resource-affinity", "resources": [105, 106],
    "affinity": "negative", "comment": "made by hand",
}  # fmt: skip
LOOKALIKE = {  # our prefix, someone else's marker
    "id": "pd-lab-pin-106", "type": "node-affinity", "resources": [106],
    "nodes": ["node01", "node02"], "comment": "provisiond:lab-old kept by hand",
}  # fmt: skip


def _topology() -> Topology:
    vm = {"status": "running", "storage": "shared", "cores": 1, "memory": "2GiB",
          "disks": [{"slot": "scsi0", "size": "8G"}], "nets": [{"slot": "net0", "bridge": "vmbr0"}],
          "hastate": "started"}  # fmt: skip
    hosts = {101: "node01", 102: "node02", 103: "node03", 104: "node04", 105: "node01",
             106: "node02", 107: "node04"}  # fmt: skip
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "publish"},
            "spec": {
                "pveVersion": "9.1",
                "hosts": [{"name": f"node0{i}", "cpus": 16, "memory": "64GiB"}
                          for i in range(1, 5)],
                "storages": [{"name": "shared", "type": "nfs", "shared": True, "size": "10TiB"}],
                "templates": [{"vmid": 9000, "name": "tmpl", "host": "node01", "storage": "shared",
                               "disks": [{"slot": "scsi0", "size": "8G"}], "bridge": "vmbr0"}],
                "vms": [{**vm, "vmid": v, "name": f"vm{v}", "host": h} for v, h in hosts.items()],
                "haRules": [THEIRS, LOOKALIKE],
            },
        }
    )  # fmt: skip


def _fleet(path: Path, *, publish: bool, db: tuple[int, ...] = (101, 102, 103)) -> Path:
    pool = {"cores": 1, "memory": "2GiB", "disks": [{"slot": "scsi0", "size": "8GiB"}]}
    spec = {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "lab"},
        "spec": {
            "defaults": {"template": "tmpl", "storage": "shared", "bridge": "vmbr0"},
            "placement": {"publishHaRules": publish},
            "pools": [
                {**pool, "name": "db", "placement": {"spread": "strict"},
                 "vms": [{"name": f"vm{v}", "vmid": v} for v in db]},
                {**pool, "name": "dc", "vms": [{"name": "vm104", "vmid": 104, "host": "node04"}]},
                {**pool, "name": "web", "placement": {"spread": "strict"},
                 "vms": [{"name": f"vm{v}", "vmid": v} for v in (105, 106)]},
            ],
            "policy": {"adopt": True},
        },
    }  # fmt: skip
    with path.open("w") as f:
        YAML().dump(spec, f)
    return path


def _settings(sim: SimHandle, spec: Path) -> Settings:
    tokenid, _, secret = sim.token.rpartition("=")
    return Settings(
        proxmox={"url": sim.url, "token_id": tokenid, "token_secret": secret,
                 "ca_bundle": sim.ca_path},  # type: ignore[arg-type]
        spec={"paths": [spec]},  # type: ignore[arg-type]
        executor=EXECUTOR,  # type: ignore[arg-type]
    )  # fmt: skip


def _rules(sim: SimHandle) -> dict[str, dict[str, Any]]:
    return sim.call(lambda c: {k: dict(v) for k, v in c.ha_rules.items()})


def _writes(sim: SimHandle) -> int:
    return sum(n for (method, _), n in sim.request_counts().items() if method != "GET")


async def _executor_guards(executor: Executor, sim: SimHandle) -> None:
    """Each action re-reads the rules: an existing equal rule is adopted (no POST), a rule that
    is not ours is refused (update, delete), a rule already gone is adopted by a delete."""
    ours = HaRule("pd-lab-pin-104", NODE_AFFINITY, frozenset({104}), (("node04", 0),), True,
                  comment=MARKER)  # fmt: skip
    theirs = HaRule("pd-lab-spread-web", RESOURCE_AFFINITY, frozenset({105, 106}),
                    affinity="negative", comment=MARKER)  # fmt: skip
    gone = replace(ours, rule="pd-lab-pin-999")
    actions = (
        HaRuleCreate(id="c", reason="t", fleet="lab", rule=ours),
        HaRuleUpdate(id="u", reason="t", fleet="lab", rule=theirs),
        HaRuleDelete(id="d", reason="t", fleet="lab", rule=theirs),
        HaRuleDelete(id="g", reason="t", fleet="lab", rule=gone),
        HaRuleUpdate(id="r", reason="t", fleet="lab", rule=gone),
    )
    before = _rules(sim)
    outcomes = {}
    for action in actions:  # one at a time: a refusal backs every rule action off
        [result] = (await executor.execute(Plan(actions=(action,)))).results
        outcomes[action.id] = (result.outcome, result.detail)
        executor.backoff.succeeded(HA_RULES_VMID)
    assert outcomes["c"][0] is Outcome.ADOPTED
    assert outcomes["u"][0] is Outcome.FAILED
    assert "refusing to update HA rule 'pd-lab-spread-web': not provisiond's" in outcomes["u"][1]
    assert outcomes["d"][0] is Outcome.FAILED
    assert "refusing to delete HA rule 'pd-lab-spread-web'" in outcomes["d"][1]
    assert outcomes["g"][0] is Outcome.ADOPTED
    assert outcomes["r"][0] is Outcome.SKIPPED  # gone: the next cycle decides
    assert _rules(sim) == before
    assert _writes(sim) == 0


def _rule_kinds(plan: Any) -> list[str]:
    return [a.kind for a in plan.actions if a.kind.startswith("ha_rule")]


async def test_publish_once_then_nothing_update_ours_delete_ours_only(tmp_path: Path) -> None:
    spec = _fleet(tmp_path / "fleet.yaml", publish=True)
    with running_simulator(_topology(), time_scale=TIME_SCALE) as sim:
        foreign = _rules(sim)
        built = app.build_daemon(_settings(sim, spec), follow_up=0.05)
        try:
            first = await built.reconciler.cycle()
            assert first.error is None, first.error
            assert sorted(_rule_kinds(first.plan)) == ["ha_rule_create", "ha_rule_create"]
            rules = _rules(sim)
            assert rules["pd-lab-spread-db"] == {
                "type": "resource-affinity", "affinity": "negative", "comment": MARKER,
                "resources": "vm:101,vm:102,vm:103",
            }  # fmt: skip
            assert rules["pd-lab-pin-104"] == {
                "type": "node-affinity", "nodes": "node04", "strict": 1, "comment": MARKER,
                "resources": "vm:104",
            }  # fmt: skip
            assert sim.count_requests("POST", "/cluster/ha/rules") == 2
            [conflict] = first.plan.conflicts
            assert "'pd-lab-spread-web' exists but is not provisiond's" in conflict.reason

            for _ in range(5):  # the adopted VMs' tags are written: converge
                result = await built.reconciler.cycle()
                assert result.error is None, result.error
                if not result.plan.actions:
                    break
                await asyncio.sleep(0.05)
            assert not result.plan.actions
            sim.reset_counts()
            again = await built.reconciler.cycle()
            assert not again.plan.actions
            assert _writes(sim) == 0  # a second run changes nothing
            assert sim.requests("GET", "/cluster/ha/rules") == 0  # cached: read once per TTL
            await _executor_guards(built.executor, sim)

            _fleet(spec, publish=True, db=(101, 102, 103, 107))  # one more strict-spread member
            changed = await built.reconciler.cycle()
            assert changed.error is None, changed.error
            assert "ha_rule_update" in _rule_kinds(changed.plan)
            assert _rules(sim)["pd-lab-spread-db"]["resources"] == "vm:101,vm:102,vm:103,vm:107"

            _fleet(spec, publish=False, db=(101, 102, 103, 107))
            deletes = 0
            for _ in range(6):
                result = await built.reconciler.cycle()
                assert result.error is None, result.error
                kinds = _rule_kinds(result.plan)
                assert kinds in ([], ["ha_rule_delete"])  # one per cycle
                deletes += len(kinds)
                if not kinds:
                    break
            assert deletes == 2
            assert _rules(sim) == foreign  # what is left is theirs, unchanged
            assert sim.count_requests("PUT", "/cluster/ha/rules/pd-lab-spread-web") == 0
        finally:
            built.close()
