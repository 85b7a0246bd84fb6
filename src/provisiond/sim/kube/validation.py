"""Server-side validation with the real rules and messages (apimachinery 1.36).

Labels (any object), annotation keys, and Node taints: key (label-key rule), value (label-value
rule, messages joined with ``;``), effect (required; one of NoSchedule, PreferNoSchedule,
NoExecute) and uniqueness of key+effect. ``validate(kind, obj)`` returns every field error; the
caller turns a non-empty list into 422 ``<Kind> "<name>" is invalid: …``.
"""

from __future__ import annotations

import re
from typing import Any

from provisiond.sim.kube import errors as e
from provisiond.sim.kube.errors import FieldError, Obj

NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
DNS1123_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
VALUE_FMT = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    f"used for validation is '{NAME_FMT}')"
)
PREFIX_MSG = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
    f"'example.com', regex used for validation is '{DNS1123_FMT}')"
)
KEY_MSG = (
    "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
    f"'123-abc', regex used for validation is '{NAME_FMT}') with an optional DNS subdomain "
    "prefix and '/' (e.g. 'example.com/MyName')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{VALUE_FMT}')"
)
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TOTAL_ANNOTATION_BYTES = 256 * 1024


def _checked(value: str, max_bytes: int, fmt: str, message: str, part: str = "") -> list[str]:
    """apimachinery's pair of checks on a name, a prefix or a value: its length, its form."""
    problems = []
    if len(value) > max_bytes:
        problems.append(f"{part}must be no more than {max_bytes} bytes")
    if not re.fullmatch(fmt, value):
        problems.append(message)
    return problems


def label_key_problems(key: str) -> list[str]:
    """apimachinery ``IsQualifiedName``: the reasons ``key`` is not a valid label key."""
    parts = key.split("/")
    problems: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += _checked(prefix, 253, DNS1123_FMT, PREFIX_MSG, "prefix part ")
    else:
        return [KEY_MSG]
    if not name:
        problems.append("name part must be non-empty")
    else:
        problems += _checked(name, 63, NAME_FMT, NAME_MSG, "name part ")
    return problems


def label_value_problems(value: str) -> list[str]:
    return _checked(value, 63, VALUE_FMT, VALUE_MSG)


def labels(values: Any, field: str = "metadata.labels") -> list[FieldError]:
    out: list[FieldError] = []
    for key, value in (values or {}).items():
        out += [e.invalid(field, key, p) for p in label_key_problems(str(key))]
        out += [e.invalid(field, value, p) for p in label_value_problems(str(value))]
    return out


def annotation_keys(values: Any) -> list[FieldError]:
    out: list[FieldError] = []
    total = 0
    for key, value in (values or {}).items():
        out += [
            e.invalid("metadata.annotations", key, p) for p in label_key_problems(str(key).lower())
        ]
        total += len(str(key)) + len(str(value))
    if total > TOTAL_ANNOTATION_BYTES:
        out.append(
            FieldError(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long",
                detail=f"may not be more than {TOTAL_ANNOTATION_BYTES} bytes",
            )
        )
    return out


def _go_taint(t: Obj) -> str:
    added = "<nil>" if t.get("timeAdded") is None else f'"{t["timeAdded"]}"'
    return (
        f'core.Taint{{Key:"{t.get("key", "")}", Value:"{t.get("value", "")}", '
        f'Effect:"{t.get("effect", "")}", TimeAdded:{added}}}'
    )


def taints(values: Any) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(values or []):
        at = f"spec.taints[{i}]"
        if not isinstance(taint, dict):
            out.append(e.invalid(at, taint, "must be an object"))
            continue
        key, value = str(taint.get("key") or ""), str(taint.get("value") or "")
        effect = str(taint.get("effect") or "")
        out += [e.invalid(f"{at}.key", key, p) for p in label_key_problems(key)]
        problems = label_value_problems(value)
        if problems:
            out.append(e.invalid(f"{at}.value", value, "; ".join(problems)))
        if not effect:
            out.append(e.required(f"{at}.effect"))
        elif effect not in EFFECTS:
            out.append(e.not_supported(f"{at}.effect", effect, EFFECTS))
        if (key, effect) in seen:
            out.append(
                e.duplicate(at, _go_taint(taint), "taints must be unique by key and effect pair")
            )
        seen.add((key, effect))
    return out


def metadata(meta: Obj) -> list[FieldError]:
    return labels(meta.get("labels")) + annotation_keys(meta.get("annotations"))


def validate(kind: str, obj: Obj) -> list[FieldError]:
    """Every field error of ``obj`` (a ``kind``); empty when valid."""
    out = metadata(obj.get("metadata") or {})
    spec = obj.get("spec") or {}
    if kind == "Node":
        out += taints(spec.get("taints"))
        if "unschedulable" in spec and not isinstance(spec["unschedulable"], bool):
            out.append(e.invalid("spec.unschedulable", spec["unschedulable"], "must be a bool"))
    if kind == "PodDisruptionBudget":
        if "minAvailable" in spec and "maxUnavailable" in spec:
            out.append(
                e.invalid(
                    "spec",
                    spec,
                    "minAvailable and maxUnavailable cannot be both set",
                )
            )
        out += labels((spec.get("selector") or {}).get("matchLabels"), "spec.selector.matchLabels")
    if kind == "Event" and "involvedObject" not in obj and "regarding" not in obj:
        out.append(e.required("involvedObject"))
    return out
