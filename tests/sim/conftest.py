"""Fixtures of the simulator tests: the PVE 8.4 API schema (third-party data read from
../shared/proxmox, never copied into the repo), indexed by (method, path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SCHEMA = Path(__file__).resolve().parents[2] / ".." / "shared" / "proxmox" / "pve-api-schema.json"
SCHEMA_9 = SCHEMA.with_name("pve-api-schema-9.1.json")


@pytest.fixture(scope="session")
def pve_schema() -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path template) -> the method's ``info`` (parameters, returns, permissions)."""
    return _index(SCHEMA)


@pytest.fixture(scope="session")
def pve_schema_9() -> dict[tuple[str, str], dict[str, Any]]:
    """The same of the PVE 9.1 schema."""
    return _index(SCHEMA_9)


def _index(schema: Path) -> dict[tuple[str, str], dict[str, Any]]:
    if not schema.exists():
        pytest.fail(f"the PVE API schema is expected at {schema}")
    index: dict[tuple[str, str], dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            for method, info in n.get("info", {}).items():
                index[(method, n["path"])] = info
            walk(n.get("children", []))

    walk(json.loads(schema.read_text()))
    return index
