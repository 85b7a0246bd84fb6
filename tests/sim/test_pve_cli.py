"""``provisiond sim serve`` as a process: the three lines tools parse, then a working server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from serve_process import INFERNO, serve, serve_to_exit

pytestmark = pytest.mark.integration


def test_serve_prints_url_ca_token_then_serves() -> None:
    with serve(INFERNO, "--time-scale", "0.01", "--log-requests") as served:
        lines = served.lines
        url = re.fullmatch(r"url: https://127\.0\.0\.1:(\d+)", lines[0])
        ca = re.fullmatch(r"ca: (/\S+\.pem)", lines[1])
        token = re.fullmatch(r"token: (\S+)@(\w+)!(\S+)=(\S+)", lines[2])
        assert url is not None, lines
        assert ca is not None, lines
        assert token is not None, lines
        api = served.api()
        assert len(api.nodes.get()) == 3
    assert served.proc.returncode == 0
    assert "GET /api2/json/nodes" in served.stderr


def test_serve_refuses_an_invalid_topology(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("apiVersion: provisiond.dev/v1alpha1\nkind: Topology\nmetadata: {name: x}\n")
    out = serve_to_exit(bad)
    assert out.returncode == 1
    assert "spec" in out.stderr
