"""SIGTERM during a long spec load: ``provisiond run`` exits within 2 s with its stop code.

A valid spec near the limits (core/limits.py) takes the pure-Python YAML parser tens of seconds
on a busy machine. The reconciler loads it in a daemon thread and stops waiting when the stop
comes, so the signal is honoured at once instead of after the parse.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import run_daemon, write_settings

from provisiond.adapters.specfile import load_desired
from provisiond.core.limits import DEFAULT_LIMITS
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

HEAD = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {{name: big{f}}}
spec:
  defaults: {{template: tmpl, cores: 2, memory: 4GiB, bridge: vmbr0}}
  pools:
"""
VM = (
    "        - {{name: big{f}-pool{p}-vm{i:05d}, vmid: {vmid}, cores: 2, memory: 4GiB,"
    " power: running, tags: [alpha, beta],"
    " kubernetes: {{labels: {{tier: web, zone: zone-{p}, rack: rack-{i:03d}}}}}}}\n"
)


def write_spec(directory: Path, *, files: int, pools: int, per_pool: int) -> Path:
    """``files`` fleets of ``pools`` pools of ``per_pool`` listed VMs each."""
    vmid = 100_000
    for f in range(files):
        parts = [HEAD.format(f=f)]
        for p in range(pools):
            parts.append(f"    - name: pool{p}\n      vms:\n")
            for i in range(per_pool):
                parts.append(VM.format(f=f, p=p, i=i, vmid=vmid))
                vmid += 1
        (directory / f"fleet{f}.yaml").write_text("".join(parts))
    return directory


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator("inferno", time_scale=0.01) as handle:
        yield handle


def test_the_generated_spec_is_valid(tmp_path: Path) -> None:
    """The generator below makes valid specs (checked small: the large one takes seconds)."""
    desired = load_desired([write_spec(tmp_path, files=2, pools=2, per_pool=3)])
    assert len(list(desired.all_vms())) == 12


def test_sigterm_during_a_long_spec_load_exits_within_2_s(tmp_path: Path, sim: SimHandle) -> None:
    spec = tmp_path / "spec"
    spec.mkdir()
    write_spec(spec, files=2, pools=4, per_pool=1200)  # 9,600 VMs, 1.6 MiB
    assert DEFAULT_LIMITS.max_vms >= 2 * 4 * 1200
    sizes = [p.stat().st_size for p in spec.iterdir()]
    assert all(s <= DEFAULT_LIMITS.max_file_bytes for s in sizes)
    assert 1.4 * (1 << 20) <= sum(sizes) <= DEFAULT_LIMITS.max_total_bytes
    daemon = run_daemon(tmp_path, write_settings(tmp_path, sim, spec))
    try:
        daemon.wait_for(lambda e: e.get("event") == "spec_loading", timeout=30)
        time.sleep(1.0)  # well into the parse, which takes 10 s and more
    finally:
        try:
            seconds = daemon.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill9()
            seconds = float("inf")
    assert seconds < 2.0, f"SIGTERM took {seconds} s during the spec load"
    assert daemon.popen.returncode == 0, daemon.tail()
    events = [e.get("event") for e in daemon.events()]
    assert "spec_loaded" not in events  # the stop came mid-load, not after it
    assert "spec_invalid" not in events
    assert "stop_requested" in events
