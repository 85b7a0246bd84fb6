"""``provisiond validate`` and ``provisiond schema`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisiond.cli import main
from provisiond.cli.commands.schema import render

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(str(p) for p in (ROOT / "config" / "examples").iterdir())


def test_validate_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(EXAMPLES) == 3
    assert main(["validate", *EXAMPLES]) == 0
    out = capsys.readouterr().out
    assert "valid: 3 fleets (42 VMs), 3 topologies" in out


def test_validate_prints_every_issue_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        "apiVersion: provisiond.dev/v1alpha1\nkind: Fleet\nmetadata: {name: Lab}\n"
        "spec:\n  pools: [{name: web, memory: 8Gb, vms: [{name: w1, vmid: 7}]}]\n"
    )
    assert main(["validate", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{bad}:3: metadata.name: invalid fleet name 'Lab'")
    assert lines[1].startswith(f"{bad}:5: spec.pools[0].memory: invalid size '8Gb'")
    assert lines[2] == f"{bad}:5: spec.pools[0].vms[0].vmid: VMID 7 is below 100, the lowest " + (
        "VMID Proxmox accepts"
    )
    assert lines[-1] == "invalid: 3 problems"


def test_validate_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2


def test_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    committed = (ROOT / "docs" / "fleet.schema.json").read_text()
    assert printed == render()
    assert printed == committed, "docs/fleet.schema.json is stale: provisiond schema > it"


def test_schema_describes_the_spec() -> None:
    schema = json.loads(render())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    settings = schema["$defs"]["VmSettings"]["properties"]
    assert {"templateVmid", "cloudInit", "gpus", "nicModel"} <= set(settings)
    assert schema["$defs"]["VmSettings"]["additionalProperties"] is False
