"""Kubernetes name, label, annotation and taint syntax, exactly as apimachinery validates it.

Ported from ``k8s.io/apimachinery/pkg/util/validation`` (``IsQualifiedName``,
``IsValidLabelValue``, ``IsDNS1123Subdomain``) and ``k8s.io/kubernetes/pkg/apis/core/validation``
(taint effects), with the same limits and the same messages, so that a spec provisiond accepts
is never refused by the API server when the labels are patched onto a node.

Each ``check_*`` function returns the list of problems (empty = valid), like apimachinery.
Taints are written as kubectl writes them: ``key=value:Effect`` or ``key:Effect``.
"""

from __future__ import annotations

import re

from provisiond.core.desired import Taint

QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)

_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}'" for e in examples)
    return f"{msg} (e.g. {shown}, regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def check_dns1123_subdomain(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: node names and label-key prefixes."""
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def check_qualified_name(value: str) -> list[str]:
    """``IsQualifiedName``: label keys, annotation keys and taint keys (``[prefix/]name``)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend(f"prefix part {m}" for m in check_dns1123_subdomain(prefix))
    else:
        example = _regex_error(
            _QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"
        )
        return [
            f"a qualified name {example} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append(f"name part {_max_len_error(QUALIFIED_NAME_MAX_LENGTH)}")
    if not _QUALIFIED_NAME_RE.match(name):
        example = _regex_error(
            _QUALIFIED_NAME_ERR, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"
        )
        errs.append(f"name part {example}")
    return errs


def check_label_value(value: str) -> list[str]:
    """``IsValidLabelValue``: at most 63 characters, empty allowed."""
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(_max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.match(value):
        example = _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        errs.append(example)
    return errs


def check_annotations_size(annotations: dict[str, str]) -> list[str]:
    """``ValidateAnnotationsSize``: keys plus values at most 256 KiB in total."""
    total = sum(len(k) + len(v) for k, v in annotations.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        return [f"may not have more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes in total"]
    return []


def parse_taint(text: str) -> tuple[Taint | None, list[str]]:
    """Parse ``key=value:Effect`` / ``key:Effect`` (kubectl's syntax) and validate every part.

    Returns the taint, or ``None`` and the problems found.
    """
    spec, sep, effect = text.rpartition(":")
    if not sep:
        return None, [
            f"taint {text!r} has no effect: write 'key=value:Effect' or 'key:Effect' with Effect "
            f"one of {', '.join(TAINT_EFFECTS)}"
        ]
    key, eq, raw_value = spec.partition("=")
    value = raw_value if eq else None
    errs = [f"key {m}" for m in check_qualified_name(key)]
    if value is not None:
        errs.extend(f"value {m}" for m in check_label_value(value))
    if effect not in TAINT_EFFECTS:
        errs.append(
            f"effect {effect!r} is not supported: supported values: {', '.join(TAINT_EFFECTS)}"
        )
    if errs:
        return None, [f"taint {text!r}: {m}" for m in errs]
    return Taint(key=key, value=value, effect=effect), []
