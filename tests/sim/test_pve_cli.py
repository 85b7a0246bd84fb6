"""``provisiond sim serve`` as a process: the three lines tools parse, then a working server."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from proxmoxer import ProxmoxAPI

pytestmark = pytest.mark.integration

TOPOLOGY = Path(__file__).resolve().parents[2] / "config" / "examples" / "inferno" / "topology.yaml"


def test_serve_prints_url_ca_token_then_serves() -> None:
    cmd = [sys.executable, "-m", "provisiond", "sim", "serve", "--topology", str(TOPOLOGY)]
    proc = subprocess.Popen(
        [*cmd, "--time-scale", "0.01", "--log-requests"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
        url = re.fullmatch(r"url: https://127\.0\.0\.1:(\d+)", lines[0])
        ca = re.fullmatch(r"ca: (/\S+\.pem)", lines[1])
        token = re.fullmatch(r"token: (\S+)@(\w+)!(\S+)=(\S+)", lines[2])
        assert url is not None, lines
        assert ca is not None, lines
        assert token is not None, lines
        api = ProxmoxAPI(
            "127.0.0.1",
            port=int(url.group(1)),
            user=f"{token.group(1)}@{token.group(2)}",
            token_name=token.group(3),
            token_value=token.group(4),
            verify_ssl=ca.group(1),
        )
        assert len(api.nodes.get()) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "GET /api2/json/nodes" in err


def test_serve_refuses_an_invalid_topology(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("apiVersion: provisiond.dev/v1alpha1\nkind: Topology\nmetadata: {name: x}\n")
    out = subprocess.run(
        [sys.executable, "-m", "provisiond", "sim", "serve", "--topology", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 1
    assert "spec" in out.stderr
