"""The daemon's spec loading with the worst inputs on disk: each is refused fast as a spec error,
the last good spec is kept and acted on, and no cycle raises (no traceback per cycle).

Real spec files (``adapters.specsource.SpecFiles``), an in-memory cluster, an empty planner."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from runtime_fakes import FakeCluster
from structlog.testing import capture_logs

from provisiond.adapters.specsource import SpecFiles
from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.runtime.executor import Executor
from provisiond.runtime.reconciler import Reconciler

GOOD = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  defaults: {templateVmid: 9000, cores: 2, memory: 4GiB}
  pools:
    - name: web
      vms: [{name: web1, vmid: 101}]
"""
LOL = '  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
LAUGHS = "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
BOMB = GOOD.replace("spec:\n", "x:\n" + LOL + LAUGHS + "spec:\n")
DEEP = GOOD.replace("vms: [{name: web1, vmid: 101}]", "vms: " + "[" * 20_000 + "]" * 20_000)
HUGE_COUNT = GOOD.replace(
    "vms: [{name: web1, vmid: 101}]",
    'count: 900000000\n      namePattern: "w{index}"\n'
    "      vmidRange: {start: 100, end: 999999999}",
)


def _nothing_to_do(desired: DesiredState, observed: ObservedState) -> Plan:
    return Plan(actions=(), waiting=())


@pytest.mark.parametrize("bad", [BOMB, DEEP, HUGE_COUNT], ids=["alias bomb", "deep", "count"])
async def test_a_worst_case_spec_is_refused_fast_and_the_last_good_one_kept(
    tmp_path: Path, bad: str
) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(GOOD)
    cluster = FakeCluster()
    r = Reconciler(SpecFiles([tmp_path]), cluster, Executor(cluster, cluster), _nothing_to_do)
    first = await r.cycle()
    assert first.spec_error is None
    assert first.desired is not None
    good = first.desired
    fleet.write_text(bad)
    started = time.perf_counter()
    with capture_logs() as logs:
        result = await r.cycle()
    assert time.perf_counter() - started < 1.0
    assert result.spec_error is not None
    assert result.desired == good  # acted on the last good spec
    [invalid] = [e for e in logs if e["event"] == "spec_invalid"]
    assert invalid["using"] == "last good spec"
    assert len(invalid["issues"]) == 1
    assert invalid["issues"][0].startswith(f"{fleet}:")
