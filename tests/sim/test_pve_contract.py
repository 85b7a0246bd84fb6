"""The simulator's parameter table against the real PVE 8.4 API schema (third-party data read
from ../shared/proxmox, never copied into the repo): parameters, the fields ``returns``
promises, the VM options and property-string keys. The responses themselves are checked
against ``returns`` in ``test_pve_returns.py``."""

from __future__ import annotations

from typing import Any

import pytest

from provisiond.sim.pve.params import ENDPOINTS, ENDPOINTS_9, Endpoint
from provisiond.sim.pve.params.propformats import VM_PROPFORMATS
from provisiond.sim.pve.params.schema import P

QEMU = "/nodes/{node}/qemu"
Q = QEMU + "/{vmid}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_parameters_match_the_schema(
    endpoint: Endpoint, pve_schema: dict[tuple[str, str], dict[str, Any]]
) -> None:
    _matches(endpoint, pve_schema)


@pytest.mark.parametrize("endpoint", ENDPOINTS_9, ids=lambda e: f"{e.method} {e.path}")
def test_9x_parameters_match_the_91_schema(
    endpoint: Endpoint,
    pve_schema: dict[tuple[str, str], dict[str, Any]],
    pve_schema_9: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert (endpoint.method, endpoint.path) not in pve_schema, "an 8.4 route: not 9.x only"
    _matches(endpoint, pve_schema_9)


def _matches(endpoint: Endpoint, schema: dict[tuple[str, str], dict[str, Any]]) -> None:
    info = schema.get((endpoint.method, endpoint.path))
    assert info is not None, "route not in the PVE schema"
    props = info["parameters"].get("properties", {})
    assert info["parameters"].get("additionalProperties") == 0
    for name, p in endpoint.params.items():
        assert name in props, f"{name}: not in the schema"
        _same(p, props[name], name)
    required = {n for n, s in props.items() if not s.get("optional")}
    assert required <= set(endpoint.params), "a required parameter is missing from the table"
    assert set(endpoint.path_vars) <= set(endpoint.params)
    returns = info["returns"]
    items = returns.get("items", returns) if returns.get("type") == "array" else returns
    promised = sorted(k for k, v in items.get("properties", {}).items() if not v.get("optional"))
    assert list(endpoint.returns) == promised


def _same(p: P, s: dict[str, Any], name: str) -> None:
    """One parameter (or property-string key) against its schema entry, field by field."""
    assert p.type == s.get("type", "string"), name
    assert p.optional == bool(s.get("optional")), name
    assert p.enum == (tuple(s["enum"]) if "enum" in s else None), name
    if isinstance(s.get("format"), dict):
        assert p.propstring, name
        assert p.fmt is None, name
    else:
        assert p.fmt == s.get("format"), name
    assert p.minimum == (int(s["minimum"]) if "minimum" in s else None), name
    assert p.maximum == (int(s["maximum"]) if "maximum" in s else None), name
    assert p.max_length == s.get("maxLength"), name
    assert p.pattern == s.get("pattern"), name


def test_config_writes_take_every_option_of_the_schema(
    pve_schema: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for method, path in (("PUT", f"{Q}/config"), ("POST", f"{Q}/config"), ("POST", QEMU)):
        props = pve_schema[(method, path)]["parameters"]["properties"]
        served = {(e.method, e.path): e for e in ENDPOINTS}[(method, path)]
        skipped = set(props) - set(served.params)
        # backup restore (archive & co.) and disk import are not simulated (docs/simulator.md)
        restore = {"archive", "bwlimit", "import-working-storage", "live-restore", "unique"}
        assert skipped <= restore, (path, skipped)


def test_property_string_formats_match_the_schema(
    pve_schema: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Every key of every property-string option: its type, format, enum, pattern, limits;
    the default key, the aliases (``volume`` for ``file``, a NIC model for ``macaddr``)."""
    props = pve_schema[("PUT", f"{Q}/config")]["parameters"]["properties"]
    formats = {n: p["format"] for n, p in props.items() if isinstance(p.get("format"), dict)}
    assert set(VM_PROPFORMATS) == set(formats)
    for name, fmt in formats.items():
        ours = VM_PROPFORMATS[name]
        aliases = {k: v["alias"] for k, v in fmt.items() if "alias" in v}
        assert dict(ours.aliases) == aliases, name
        key_aliases = {v["keyAlias"] for v in fmt.values() if "keyAlias" in v}
        assert key_aliases == ({ours.key_alias} if ours.key_alias else set()), name
        assert set(ours.keys) == set(fmt) - set(aliases), name
        for key, p in ours.keys.items():
            _same(p, fmt[key], f"{name}.{key}")
        defaults = [k for k, v in fmt.items() if v.get("default_key")]
        assert [ours.default_key] == (defaults or [None]), name
