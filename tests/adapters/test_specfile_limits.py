"""Spec values that are well-formed but wrong: limits, bounds and what a topology could hold.

Each ``#<`` case is a whole document; the issue must point at the marked line. The worst inputs
(alias bomb, huge count, deep nesting, an oversized file) are refused in under a second, in
process and through ``python -m provisiond validate`` (exit 1, one line per problem).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisiond.adapters.specfile import load_desired, load_documents
from provisiond.core.errors import SpecError
from provisiond.core.limits import SpecLimits

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"

HEAD = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  defaults: {template: tmpl, cores: 2, memory: 4GiB, bridge: vmbr0}
"""
ONE_VM = "      vms: [{name: w1, vmid: 100}]\n"


def _count_pool(count: int, name: str = "web", start: int = 100) -> str:
    return (
        f"    - name: {name}\n"
        f"      count: {count}  #<\n"
        f'      namePattern: "{name}{{index}}"\n'
        f"      vmidRange: {{start: {start}, end: 999999999}}\n"
    )


def _bomb(levels: int = 9) -> str:
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"  a{i}: &a{i} [{refs}]\n")
    return "".join(lines)


CASES: dict[str, tuple[str, str, str]] = {
    # id: (document, expected path, expected message fragment)
    "count: 900000000": (
        HEAD + "  pools:\n" + _count_pool(900_000_000),
        "spec.pools[0].count",
        "pool 'web' declares 900000000 VMs, more than the 10000 a pool may have",
    ),
    "count: 1000000": (
        HEAD + "  pools:\n" + _count_pool(1_000_000),
        "spec.pools[0].count",
        "declares 1000000 VMs, more than the 10000",
    ),
    "memory: 1048576TiB": (
        HEAD + "  pools:\n    - name: web\n      memory: 1048576TiB  #<\n" + ONE_VM,
        "spec.pools[0].memory",
        "memory '1048576TiB' is more than 4TiB, the most Proxmox gives one VM",
    ),
    "memory below Proxmox's minimum": (
        HEAD + "  pools:\n    - name: web\n" + ONE_VM.replace("}]", ", memory: 8MiB}]  #<"),
        "spec.pools[0].vms[0].memory",
        "memory '8MiB' is below 16MiB, the least Proxmox gives a VM",
    ),
    "disk over the sanity bound": (
        HEAD
        + "  pools:\n    - name: web\n      disks:\n"
        + "        - {slot: scsi0, size: 1025TiB}  #<\n"
        + ONE_VM,
        "spec.pools[0].disks[0].size",
        "disk size '1025TiB' is more than 1024TiB",
    ),
    "a malformed memory is reported once, as a format error": (
        HEAD + "  pools:\n    - name: web\n      memory: 16Gb  #<\n" + ONE_VM,
        "spec.pools[0].memory",
        "did you mean '16GiB'?",
    ),
    "YAML alias bomb": (
        HEAD.replace("spec:\n", "x:\n" + _bomb() + "spec:\n"),
        "",
        "aliases repeat more than 10000 values in this document",
    ),
    "alias inside its own anchor": (
        HEAD + "  pools: &p [*p]  #<\n",
        "",
        "alias *p is inside its own anchor",
    ),
    "20,000-deep nesting": (
        HEAD + "  pools:\n" + "  " * 3 + "[" * 20_000 + "]" * 20_000 + "  #<\n",
        "",
        "nesting deeper than 64 levels",
    ),
}


def _expected_line(text: str) -> int:
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if line.endswith("#<")]
    return marked[0] if marked else _bomb_crossing_line(text)


def _bomb_crossing_line(text: str) -> int:
    # 9 values per list: a_i repeats 9 lists of a_{i-1}; the budget of 10,000 repeated values
    # is crossed on the line of a4 (a3 holds 1+9*(1+9*(1+9*10)) = 7390 values per alias).
    return next(n for n, line in enumerate(text.splitlines(), start=1) if "a4: &a4" in line)


@pytest.mark.parametrize("case", CASES)
def test_limit_names_file_line_path_and_reason(tmp_path: Path, case: str) -> None:
    text, path, fragment = CASES[case]
    file = tmp_path / "fleet.yaml"
    file.write_text(text)
    started = time.perf_counter()
    issues = load_documents([file]).issues
    assert time.perf_counter() - started < 1.0
    matching = [i for i in issues if i.path == path and fragment in i.message]
    assert matching, "\n".join(map(str, issues))
    assert len(issues) == 1, "\n".join(map(str, issues))
    assert (matching[0].file, matching[0].line) == (str(file), _expected_line(text))


def test_vms_per_pool_and_in_total(tmp_path: Path) -> None:
    limits = SpecLimits(max_vms_per_pool=3, max_vms=5)
    listed = "".join(f"        - {{name: v{i}, vmid: {200 + i}}}\n" for i in range(4))
    file = tmp_path / "fleet.yaml"
    file.write_text(HEAD + "  pools:\n    - name: db\n      vms:  #<\n" + listed)
    [issue] = load_documents([file], limits=limits).issues
    assert (issue.line, issue.path) == (8, "spec.pools[0].vms")
    assert "pool 'db' declares 4 VMs, more than the 3 a pool may have" in issue.message
    # Two fleets of 3: the second crosses the total; the issue points at its pool.
    (tmp_path / "fleet.yaml").write_text(HEAD + "  pools:\n" + _count_pool(3))
    other = HEAD.replace("name: lab", "name: lab2") + "  pools:\n" + _count_pool(3, "db", 500)
    (tmp_path / "more.yaml").write_text(other)
    [issue] = load_documents([tmp_path], limits=limits).issues
    assert (issue.file, issue.line) == (str(tmp_path / "more.yaml"), 8)
    assert issue.message.startswith("the fleets declare 6 VMs in total, more than the 5")


def test_file_and_total_size(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "  pools:\n" + _count_pool(1) + "#" * (1 << 20) + "\n")
    started = time.perf_counter()
    [issue] = load_documents([big]).issues
    assert time.perf_counter() - started < 1.0
    assert str(issue) == (
        f"{big}: the file is 1 MiB, more than the 1 MiB a spec file may hold; split the fleet "
        "into several files"
    )
    limits = SpecLimits(max_total_bytes=400)
    big.unlink()
    (tmp_path / "a.yaml").write_text(HEAD + "  pools:\n" + _count_pool(1))
    (tmp_path / "b.yaml").write_text(HEAD.replace("lab", "lab2") + "  pools:\n" + _count_pool(1))
    assert [str(i) for i in load_documents([tmp_path], limits=limits).issues] == [
        f"{tmp_path / 'b.yaml'}: not read: the spec files together exceed 0.0003815 MiB (the "
        "limit for all spec files together)"
    ]


def test_anchors_within_the_budget_are_fine(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text(
        HEAD
        + "  pools:\n"
        + "    - name: web\n      disks: &disks [{slot: scsi0, size: 32GiB}]\n"
        + "      vms: [{name: w1, vmid: 100}]\n"
        + "    - name: db\n      disks: *disks\n      vms: [{name: d1, vmid: 101}]\n"
    )
    desired = load_desired([file])
    assert [d.size_bytes for vm in desired.all_vms() for d in vm.disks] == [32 << 30] * 2


def test_the_daemon_loader_refuses_the_worst_inputs_as_spec_errors(tmp_path: Path) -> None:
    for case in ("YAML alias bomb", "20,000-deep nesting", "count: 900000000"):
        (tmp_path / "fleet.yaml").write_text(CASES[case][0])
        with pytest.raises(SpecError) as caught:
            load_desired([tmp_path])
        assert [i.message for i in caught.value.issues if CASES[case][2] in i.message]


# --- against a topology -------------------------------------------------------------------------


def _example(tmp_path: Path, name: str = "cps-gpu") -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    return target / "fleet.yaml"


def _edit(file: Path, old: str, new: str, *, count: int = 1) -> int:
    """Replace the first ``count`` occurrences; the 1-based line of the first one."""
    text = file.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    file.write_text(text.replace(old, new, count))
    return line


def test_a_disk_typo_is_larger_than_the_storage(tmp_path: Path) -> None:
    fleet = _example(tmp_path)
    line = _edit(fleet, "size: 100GiB", "size: 100TiB")
    [issue] = load_documents([fleet.parent]).issues
    assert (issue.file, issue.line, issue.path) == (str(fleet), line, "spec.pools[0].disks[0].size")
    assert issue.message == (
        f"disk scsi0 of 100TiB is larger than storage local-nvme holds (1.8TiB, "
        f"{fleet.parent / 'topology.yaml'}); disks grow and never shrink; did you mean '100GiB'?"
    )
    # The daemon's loader reads no topology: the plan-time check is the planner's.
    assert load_desired([fleet])


def test_cores_over_the_largest_host_and_memory_over_it_times_overcommit(tmp_path: Path) -> None:
    fleet = _example(tmp_path)
    cores = _edit(fleet, "cores: 48", "cores: 129")
    memory = _edit(fleet, "memory: 128GiB", "memory: 1100GiB")
    issues = load_documents([fleet.parent]).issues
    top = fleet.parent / "topology.yaml"
    assert [(i.line, i.path, i.message) for i in issues] == [
        (
            cores,
            "spec.pools[1].cores",
            f"129 cores are more than the largest host the VM may use has: cit-gpu-01 has 128 "
            f"logical CPUs ({top}); Proxmox does not start a VM with more vCPUs than its host has",
        ),
        (
            memory,
            "spec.pools[1].memory",
            f"memory 1100GiB is more than the largest host the VM may use could hold: cit-gpu-01 "
            f"has 1TiB ({top})",
        ),
    ]
    _edit(fleet, "cores: 129", "cores: 48")
    _edit(fleet, "overcommit: {cpu: 4.0, memory: 1.0}", "overcommit: {cpu: 4.0, memory: 1.5}")
    assert load_documents([fleet.parent]).ok  # 1100GiB <= 1TiB x 1.5


def test_a_vm_is_held_to_the_hosts_it_may_use(tmp_path: Path) -> None:
    fleet = _example(tmp_path, "astronomy-lab")
    # k8s-masters may use node01-03 (16 CPUs each); node04's 32 CPUs do not count for them.
    pool = _edit(fleet, "      cores: 4                      # assumed", "      cores: 20")
    pinned = _edit(fleet, "name: proj-k8sw01,", "name: proj-k8sw01, host: node02, cores: 17,")
    top = fleet.parent / "topology.yaml"
    assert [(i.line, i.path, i.message) for i in load_documents([fleet.parent]).issues] == [
        (
            pool,
            "spec.pools[0].cores",
            f"20 cores are more than the largest host the VM may use has: node01 has 16 logical "
            f"CPUs ({top}); Proxmox does not start a VM with more vCPUs than its host has",
        ),
        (
            pinned,
            "spec.pools[1].vms[0].cores",
            f"17 cores are more than proj-k8sw01's host has: node02 has 16 logical CPUs ({top}); "
            "Proxmox does not start a VM with more vCPUs than its host has",
        ),
    ]


def test_a_topology_elsewhere_is_not_this_fleets_cluster(tmp_path: Path) -> None:
    fleet = _example(tmp_path)
    _edit(fleet, "size: 100GiB", "size: 100TiB")
    (fleet.parent / "topology.yaml").rename(tmp_path / "topology.yaml")
    assert load_documents([fleet.parent, tmp_path / "topology.yaml"]).ok


# --- the CLI ------------------------------------------------------------------------------------


def test_validate_refuses_the_worst_inputs_quickly_with_one_line_each(tmp_path: Path) -> None:
    cases = ("YAML alias bomb", "count: 900000000", "20,000-deep nesting", "memory: 1048576TiB")
    paths = []
    for n, case in enumerate(cases):
        d = tmp_path / f"case{n}"
        d.mkdir()
        (d / "fleet.yaml").write_text(CASES[case][0])
        paths.append(d)
    big = tmp_path / "big"
    big.mkdir()
    (big / "fleet.yaml").write_text(HEAD + "  pools:\n" + _count_pool(1) + "#" * (1 << 20) + "\n")
    paths.append(big)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    # What the process costs without any spec work: the interpreter and the CLI's imports.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "provisiond", "--help"], env=env, check=True, stdout=-3)
    baseline = time.perf_counter() - started
    for path in paths:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "provisiond", "validate", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.perf_counter() - started
        assert done.returncode == 1, done.stderr
        assert done.stderr == ""
        lines = done.stdout.splitlines()
        assert len(lines) == 2, lines  # the problem, then "invalid: 1 problem"
        assert lines[0].startswith(str(path / "fleet.yaml"))
        assert lines[1] == "invalid: 1 problem"
        assert took < baseline + 1.0 + 0.5 * baseline, (path, took, baseline)  # load noise
