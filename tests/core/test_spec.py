"""Fleet spec building blocks: sizes, Kubernetes syntax, the models' formats."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from provisiond.core.desired import Taint
from provisiond.core.kubesyntax import (
    check_annotations_size,
    check_dns1123_subdomain,
    check_label_value,
    check_qualified_name,
    parse_taint,
)
from provisiond.core.spec import Fleet, format_path
from provisiond.core.units import UNITS, parse_size, size_to_mib

# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("16GiB", 16 << 30), ("100GiB", 100 << 30), ("1TiB", 1 << 40), ("512MiB", 512 << 20)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("128Gb", "did you mean '128GiB'?"),
        ("128GB", "did you mean '128GiB'?"),
        ("128G", "did you mean '128GiB'?"),
        ("16 GiB", "did you mean '16GiB'?"),
        ("4m", "did you mean '4MiB'?"),
        ("0GiB", "must be greater than zero"),
        ("1.5TiB", "use a whole number with a smaller unit"),
        ("100", "a size needs a unit"),
        ("12 parsecs", "unknown unit 'parsecs'"),
        ("lots", "sizes are a whole number with a binary unit"),
    ],
)
def test_bad_sizes_say_what_was_meant(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=r"invalid size|greater than zero") as exc:
        parse_size(text)
    assert fragment in str(exc.value)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_size_round_trip(number: int, unit: str) -> None:
    assert parse_size(f"{number}{unit}") == number * UNITS[unit]


def test_memory_is_whole_mib() -> None:
    assert size_to_mib("16GiB") == 16384
    with pytest.raises(ValueError, match="whole number of MiB"):
        size_to_mib("1536KiB")


# --- Kubernetes syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["gpu-model", "nvidia.com/mig.capable", "node-role.kubernetes.io/control-plane", "A_b.c"]
)
def test_valid_qualified_names(key: str) -> None:
    assert check_qualified_name(key) == []


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("a/b/c", "a qualified name must consist of alphanumeric characters"),
        ("/x", "prefix part must be non-empty"),
        ("example.com/", "name part must be non-empty"),
        ("x" * 64, "name part must be no more than 63 characters"),
        ("-x", "name part must consist of alphanumeric characters"),
        ("Example.com/x", "prefix part a lowercase RFC 1123 subdomain"),
        (("a" * 60 + ".") * 5 + "/x", "prefix part must be no more than 253 characters"),
    ],
)
def test_invalid_qualified_names(key: str, fragment: str) -> None:
    errs = check_qualified_name(key)
    assert any(fragment in e for e in errs), errs


def test_label_values() -> None:
    assert check_label_value("") == []
    assert check_label_value("a" * 63) == []
    assert check_label_value("a" * 64) == ["must be no more than 63 characters"]
    (err,) = check_label_value("-bad")
    assert err.startswith("a valid label must be an empty string or consist of")
    assert "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?'" in err


def test_dns1123_subdomain() -> None:
    assert check_dns1123_subdomain("k3s-wk-gpu1") == []
    assert check_dns1123_subdomain("K3s")  # node names are lower case


def test_annotations_size() -> None:
    assert check_annotations_size({"a": "b"}) == []
    assert check_annotations_size({"a": "x" * (256 * 1024)}) == [
        "may not have more than 262144 bytes in total"
    ]


@pytest.mark.parametrize(
    ("text", "taint"),
    [
        ("inferno/gpu=true:NoSchedule", Taint("inferno/gpu", "true", "NoSchedule")),
        ("dedicated:NoExecute", Taint("dedicated", None, "NoExecute")),
        ("x=:PreferNoSchedule", Taint("x", "", "PreferNoSchedule")),
    ],
)
def test_taints(text: str, taint: Taint) -> None:
    assert parse_taint(text) == (taint, [])
    assert str(taint) == text


def test_bad_taints_list_every_problem() -> None:
    taint, errs = parse_taint("a/b/c=" + "v" * 64 + ":Never")
    assert taint is None
    assert len(errs) == 3
    assert errs[0].startswith("taint 'a/b/c=")
    assert "key a qualified name" in errs[0]
    assert "value must be no more than 63 characters" in errs[1]
    assert "effect 'Never' is not supported" in errs[2]


# --- models --------------------------------------------------------------------------------------


def _fleet(**pool: Any) -> dict[str, Any]:
    return {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "lab"},
        "spec": {"pools": [{"name": "web", "vms": [{"name": "w1", "vmid": 100}], **pool}]},
    }


def _errors(**pool: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as exc:
        Fleet.model_validate(_fleet(**pool))
    return [(format_path(tuple(e["loc"])), e["msg"]) for e in exc.value.errors()]


@pytest.mark.parametrize(
    ("pool", "path", "fragment"),
    [
        ({"memory": 16}, "spec.pools[0].memory", "Input should be a valid string"),
        ({"ip": "10.0.0.300/24"}, "spec.pools[0].ip", "is not an IPv4 CIDR"),
        ({"gateway": "gw"}, "spec.pools[0].gateway", "is not an IPv4 address"),
        ({"gpus": {"mapping": "A100 40g"}}, "spec.pools[0].gpus.mapping", "invalid mapping id"),
        ({"gpus": "01:00.0"}, "spec.pools[0].gpus", "a raw PCI address ('01:00.0')"),
        (
            {"gpus": {"mapping": "host=0000:01:00.0;0000:02:00.0"}},
            "spec.pools[0].gpus.mapping",
            "raw",
        ),
        ({"tags": ["Web"]}, "spec.pools[0].tags[0]", "invalid tag 'Web'"),
        ({"disks": [{"slot": "scsi31", "size": "1GiB"}]}, "spec.pools[0].disks[0].slot", "slot"),
        ({"templateVmid": "9000"}, "spec.pools[0].templateVmid", "valid integer"),
        ({"cores": True}, "spec.pools[0].cores", "valid integer"),
        ({"gateway": 10}, "spec.pools[0].gateway", "valid string"),
        ({"gpus": {"mapping": 5}}, "spec.pools[0].gpus.mapping", "valid string"),
    ],
)
def test_model_formats(pool: dict[str, Any], path: str, fragment: str) -> None:
    errors = _errors(**pool)
    assert any(p == path and fragment in m for p, m in errors), errors


def test_policy_defaults_mirror_the_desired_state() -> None:
    fleet = Fleet.model_validate(_fleet())
    assert fleet.spec.policy.max_concurrent_actions == 4
    assert fleet.spec.policy.overcommit.cpu == 4.0
    assert fleet.spec.defaults.template is None


def test_snake_case_keys_are_unknown() -> None:
    errors = _errors(template_vmid=9000)
    assert errors == [("spec.pools[0].template_vmid", "Extra inputs are not permitted")]


def test_format_path() -> None:
    assert format_path(("spec", "pools", 1, "vms", 0, "vmid")) == "spec.pools[1].vms[0].vmid"
    assert format_path(("labels", "a.b/c")) == 'labels["a.b/c"]'


def test_format_size_picks_the_largest_exact_unit() -> None:
    from provisiond.core.units import format_size

    assert format_size(100 << 30) == "100GiB"
    assert format_size(1536 << 20) == "1536MiB"
    assert format_size(2 << 40) == "2TiB"
    assert format_size(1000) == "1000 bytes"
