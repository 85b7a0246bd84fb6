"""The CLI entry point: help, version, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provisiond import __version__
from provisiond.cli import main


def test_version_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["provisiond"] == __version__
    assert data["proxmoxer"].startswith("2.")
    assert data["aiomqtt"].startswith("2.")
    assert data["prometheus-client"] != "missing"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_console_script_runs_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "provisiond", "--version"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == f"provisiond {__version__}"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--metrics-bind", "localhost"), ("--metrics-bind", "::1:80"), ("--mqtt-url", "tcp://x")],
)
def test_demo_refuses_a_malformed_endpoint_before_starting_anything(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
