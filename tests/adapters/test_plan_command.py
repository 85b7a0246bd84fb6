"""``provisiond plan`` end to end: real proxmoxer → simulator → observer → planner → JSON/text.

Drift is made through the simulator's handle (or through the API as a person would), then
``plan`` must explain it. Converging a world uses ``apply --auto-approve``, the user's path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisiond.cli import main
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"


def _plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["plan", "--output", "json", "--detailed-exitcode", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _settings_file(tmp: Path, sim: SimHandle, spec: Path, *, token: str | None = None) -> Path:
    """A settings file for ``sim`` (secret in its own file, as in production)."""
    tokenid, _, secret = (token or sim.token).rpartition("=")
    (tmp / "token").write_text(secret)
    cfg = tmp / "provisiond.yaml"
    cfg.write_text(
        f"proxmox:\n  url: {sim.url}\n  token_id: '{tokenid}'\n"
        f"  token_secret_file: {tmp / 'token'}\n  ca_bundle: {sim.ca_path}\n"
        f"spec:\n  paths: [{spec}]\n"
    )
    return cfg


def _by_vm(plan: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in plan["actions"]:
        out.setdefault(a["vm"], []).append(a["action"])
    return out


def test_plan_sim_cps_gpu_clones_eight_within_eight_a100s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, plan = _plan_json(capsys, "--sim", str(EXAMPLES / "cps-gpu"))
    assert code == 2
    clones = [a for a in plan["actions"] if a["action"] == "clone"]
    assert sorted(a["vm"] for a in clones) == sorted(
        ["k3s-cp1", "k3s-cp2", "k3s-cp3", "k3s-maint"] + [f"k3s-wk-gpu{i}" for i in range(1, 5)]
    )
    gpus = {a["vm"]: a["gpus"] for a in clones}
    assert all(gpus[f"k3s-wk-gpu{i}"] == ["a100-40g", "a100-40g"] for i in range(1, 5))
    assert sum(len(g) for g in gpus.values()) == 8  # never more than the 8 A100s
    assert {a["host"] for a in clones} == {"cit-gpu-01"}
    assert all(a["reason"] for a in plan["actions"])
    assert plan["summary"]["clone"] == 8
    assert plan["blocked"] == []
    assert plan["conflicts"] == []
    assert plan["warnings"] == []  # the simulator's token is an administrator
    # per VM order: clone before configure before start
    ids = [a["id"] for a in plan["actions"]]
    for a in plan["actions"]:
        assert all(ids.index(dep) < ids.index(a["id"]) for dep in a["after"])


def test_plan_sim_astronomy_lab_adopts_and_rebalances(capsys: pytest.CaptureFixture[str]) -> None:
    code, plan = _plan_json(capsys, "--sim", str(EXAMPLES / "astronomy-lab"))
    assert code == 2
    assert plan["summary"].get("clone", 0) == 0  # everything exists: adopted, not cloned
    adopted = [a for a in plan["actions"] if a["action"] == "configure"]
    assert len(adopted) == 25
    assert all(a["reason"].startswith("adopt") for a in adopted)
    assert all("provisiond" in a["details"]["values"]["tags"] for a in adopted)
    moves = [a for a in plan["actions"] if a["action"] == "migrate"]
    assert moves, "node02 (18/16 vCPU, 66/64 GiB) must shed load"
    print(f"astronomy-lab rebalance: {len(moves)} live migrations")
    assert {m["details"]["source"] for m in moves} <= {"node02", "node03"}
    assert all(m["details"]["online"] for m in moves)


def test_plan_text_has_markers_and_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["plan", "--sim", str(EXAMPLES / "cps-gpu")]) == 0  # no --detailed-exitcode
    out = capsys.readouterr().out
    assert "k3s-wk-gpu1 (1038)  gpus: a100-40g, a100-40g" in out
    assert "  + clone on cit-gpu-01: VMID 1038 does not exist" in out
    assert out.rstrip().endswith("Plan: 8 to clone, 8 to configure, 8 to grow, 8 to start")
    assert "\x1b[" not in out  # no colour off a TTY


def test_plan_with_an_invalid_spec_fails_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.yaml"
    text = (EXAMPLES / "cps-gpu" / "fleet.yaml").read_text()
    bad.write_text(text.replace("cores: 48", "cores: -48", 1))
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "cores: 48" in ln)) + 1
    capsys.readouterr()
    code = main(["plan", "--sim", str(EXAMPLES / "cps-gpu"), "--spec", str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{bad}:{line}: " in err
    assert "cores" in err


def test_plan_without_connection_settings_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROVISIOND_CONFIG", raising=False)
    capsys.readouterr()
    code = main(["plan", "--spec", str(EXAMPLES / "cps-gpu" / "fleet.yaml")])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "set proxmox.url, proxmox.token_id and proxmox.token_secret (or proxmox.user and password)"
        in err
    )


# --- drift in a converged world --------------------------------------------------------------


@pytest.fixture
def converged_cps(tmp_path: Path) -> Iterator[tuple[SimHandle, Path]]:
    with running_simulator("cps-gpu", time_scale=0.002) as sim:
        cfg = _settings_file(tmp_path, sim, EXAMPLES / "cps-gpu" / "fleet.yaml")
        assert main(["apply", "--config", str(cfg), "--auto-approve"]) == 0
        yield sim, cfg


def test_converged_world_plans_nothing_then_explains_each_drift(
    converged_cps: tuple[SimHandle, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, cfg = converged_cps
    code, plan = _plan_json(capsys, "--config", str(cfg))
    assert (code, plan["actions"]) == (0, [])

    api = proxmox_client(sim)
    node = "cit-gpu-01"
    # a VM missing: stopped and destroyed by hand
    api.nodes(node).qemu(1035).status.stop.post()
    _wait_tasks(sim)
    api.nodes(node).qemu(1035).delete()
    # wrong memory, set by hand on a stopped VM
    api.nodes(node).qemu(1036).status.stop.post()
    _wait_tasks(sim)
    api.nodes(node).qemu(1036).config.put(memory=8192)
    # a GPU worker rebuilt without its GPUs
    sim.set_config(1038, hostpci0=None, hostpci1=None)
    # a change left pending: cores changed on a running VM that does not hot-plug them
    api.nodes(node).qemu(1040).config.put(cores=8)
    _wait_tasks(sim)

    code, plan = _plan_json(capsys, "--config", str(cfg))
    assert code == 2
    acts = _by_vm(plan)
    assert acts["k3s-cp1"][0] == "clone"  # missing → cloned again at its own VMID
    assert next(a for a in plan["actions"] if a["action"] == "clone")["vmid"] == 1035
    assert "configure" in acts["k3s-cp2"]
    cp2 = next(a for a in plan["actions"] if a["vm"] == "k3s-cp2" and a["action"] == "configure")
    assert cp2["details"]["values"]["memory"] == "16384"
    gpu1 = next(
        a for a in plan["actions"] if a["vm"] == "k3s-wk-gpu1" and a["action"] == "configure"
    )
    assert gpu1["details"]["values"]["hostpci0"] == "mapping=a100-40g"
    assert gpu1["details"]["values"]["hostpci1"] == "mapping=a100-40g"
    assert gpu1["gpus"] == ["a100-40g", "a100-40g"]
    # the pending change is seen (current config differs) and not silently considered done
    gpu3 = [a for a in plan["actions"] if a["vm"] == "k3s-wk-gpu3"] + [
        b for b in plan["blocked"] if b["vm"] == "k3s-wk-gpu3"
    ]
    assert gpu3, "a change waiting for a reboot must show in the plan"
    # no more than the 8 A100s are ever claimed
    claimed = sum(len(a["gpus"]) for a in plan["actions"] if a["action"] == "clone")
    assert claimed == 0


def _wait_tasks(sim: SimHandle, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while sim.running_tasks() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not sim.running_tasks()


def test_a_vm_moved_by_hand_breaking_strict_spread_is_moved_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with running_simulator("astronomy-lab", time_scale=0.002) as sim:
        # the k8s masters are strictly spread over node01..03: move master 1 next to master 3
        sim.move_vm(101, "node03")
        cfg = _settings_file(tmp_path, sim, EXAMPLES / "astronomy-lab" / "fleet.yaml")
        code, plan = _plan_json(capsys, "--config", str(cfg))
    assert code == 2
    masters = {"proj-k8sm01", "proj-k8sm02", "proj-k8sm03"}
    moves = [a for a in plan["actions"] if a["vm"] in masters and a["action"] == "migrate"]
    assert len(moves) == 1  # one of the two on node03 goes, to the host without a master
    assert moves[0]["details"]["source"] == "node03"
    assert moves[0]["host"] == "node01"
    assert moves[0]["reason"].startswith("strict spread")


def test_a_token_lacking_privileges_is_reported_and_apply_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_simulator("cps-gpu", time_scale=0.002) as sim:
        sim.add_user("fleet@pve")
        token = sim.add_token("fleet@pve", "ci")
        # sees everything, manages VMs; may not allocate storage, use mappings or the VLAN
        sim.set_acl("/", ["PVEVMAdmin", "PVEAuditor"], users=["fleet@pve"])
        cfg = _settings_file(tmp_path, sim, EXAMPLES / "cps-gpu" / "fleet.yaml", token=token)
        code, plan = _plan_json(capsys, "--config", str(cfg))
        assert code == 2
        warnings = "\n".join(plan["warnings"])
        assert (
            "token fleet@pve!ci lacks Mapping.Use on /mapping/pci/a100-40g (needed for k3s-wk-gpu1"
            in warnings
        )
        assert "token fleet@pve!ci lacks Datastore.AllocateSpace on /storage/local-nvme" in warnings
        assert "VM.Clone" not in warnings  # PVEVMAdmin clones
        sim.reset_counts()
        capsys.readouterr()
        assert main(["apply", "--config", str(cfg), "--auto-approve"]) == 1
        out = capsys.readouterr().out
        assert "refusing to apply: the token lacks privileges the plan needs" in out
        mutating = {k: n for k, n in sim.request_counts().items() if k[0] != "GET" and n}
        assert mutating == {}  # refused before acting


def test_vms_on_an_offline_host_are_unknown_not_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_simulator("astronomy-lab", time_scale=0.002) as sim:
        sim.host_offline("nas01")
        cfg = _settings_file(tmp_path, sim, EXAMPLES / "astronomy-lab" / "fleet.yaml")
        code, plan = _plan_json(capsys, "--config", str(cfg))
    assert code == 2
    assert "host nas01 is offline: its VMs are unknown, not missing" in plan["warnings"]
    on_nas = {"proj-k8sw05", "proj-kasm01"}
    assert not [a for a in plan["actions"] if a["vm"] in on_nas]  # no clone, no touch
    assert not [a for a in plan["actions"] if a["action"] == "clone"]
    blocked = {b["vm"]: b["code"] for b in plan["blocked"]}
    assert blocked["proj-k8sw05"] == blocked["proj-kasm01"] == "unknown_status"
    assert not [a for a in plan["actions"] if a["host"] == "nas01"]  # nothing placed there
