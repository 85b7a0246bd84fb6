"""Commands as a user expects them: ``apply --sim`` like ``plan --sim``, ``sim serve`` output that
pastes into the settings, output off a terminal not wrapped at 80 columns, plain ``--help``.
Every case runs the CLI as a process, as a user would (stdout a pipe, not a terminal)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import provisiond
from provisiond.cli.main import COMMANDS

EXAMPLES = Path(__file__).resolve().parents[1] / "config" / "examples"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return provisiond(*args, env=env)


def test_apply_takes_sim_like_plan_and_does_not_wrap_in_a_pipe() -> None:
    done = cli("apply", "--sim", str(EXAMPLES / "cps-gpu"), "--auto-approve")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Left:" in done.stdout
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) > 80  # a long reason stays on its line
    # every planned action is one line: marker, kind, host, reason — none continued below
    actions = [line for line in lines if line.startswith("  + clone")]
    assert actions
    assert all(": " in line for line in actions)


def test_plan_in_a_pipe_is_not_wrapped_at_80_columns() -> None:
    planned = cli("plan", "--sim", str(EXAMPLES / "inferno"))
    assert planned.returncode == 0, planned.stderr
    assert max(len(line) for line in planned.stdout.splitlines()) > 80


def test_apply_sim_with_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    result = cli("apply", "--sim", str(tmp_path / "nope"), "--auto-approve")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'nope' / 'topology.yaml'}: ")


def test_sim_serve_prints_settings_that_paste_into_a_file_and_the_environment(
    tmp_path: Path,
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisiond",
            "sim",
            "serve",
            "--topology",
            str(EXAMPLES / "inferno" / "topology.yaml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(13)]
        assert lines[0].startswith("url: https://")  # the three lines tools parse, unchanged
        assert lines[1].startswith("ca: ")
        assert lines[2].startswith("token: ")
        block = lines[4:9]
        assert block[0] == "proxmox:"
        assert block[3].startswith("  token_id: ")
        assert block[4].startswith("  token_secret: ")
        spec = EXAMPLES / "inferno" / "fleet.yaml"
        cfg = tmp_path / "provisiond.yaml"
        cfg.write_text("\n".join(block) + f"\nspec:\n  paths: [{spec}]\n")
        from_file = cli("plan", "--config", str(cfg))
        assert from_file.returncode == 0, from_file.stderr
        env: dict[str, str] = {}
        for line in lines[9:13]:
            words = shlex.split(line)
            assert words[0] == "export"
            key, _, value = words[1].partition("=")
            env[key] = value
        assert sorted(env) == [
            "PROVISIOND_PROXMOX__CA_BUNDLE",
            "PROVISIOND_PROXMOX__TOKEN_ID",
            "PROVISIOND_PROXMOX__TOKEN_SECRET",
            "PROVISIOND_PROXMOX__URL",
        ]
        from_env = cli("plan", "--spec", str(spec), env=env)
        assert from_env.returncode == 0, from_env.stderr
        assert from_env.stdout == from_file.stdout
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


@pytest.mark.parametrize("name", sorted({m.__name__.rsplit(".", 1)[1] for m in COMMANDS}))
def test_help_is_plain_words_not_restructuredtext(name: str) -> None:
    result = cli(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "``" not in result.stdout
    assert "::\n" not in result.stdout
