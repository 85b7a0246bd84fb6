"""Pydantic's validation errors on a spec document → ``SpecIssue``s a person can act on: the
field path, the line (through the caller's locator), and a message that names the allowed fields
or the closest one (``cpus`` → ``cores``) for an unknown field, says "put it in quotes" for a
number where a string belongs, and shows values as YAML wrote them."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from provisiond.core.errors import SpecIssue
from provisiond.core.spec import Path as FieldPath
from provisiond.core.spec import format_path

SYNONYMS = {  # what people write for a field, from other tools' vocabularies
    "cpus": "cores",
    "cpu": "cores",
    "vcpus": "cores",
    "ram": "memory",
    "mem": "memory",
    "id": "vmid",
    "node": "host",
    "gpu": "gpus",
    "nets": "nics",
}


def validation_issues(
    file: str,
    locate: typing.Callable[[FieldPath], int | None],
    model: type[BaseModel],
    exc: ValidationError,
) -> Iterator[SpecIssue]:
    for err in exc.errors(include_url=False):
        loc: FieldPath = tuple(p for p in err["loc"] if p != "[key]")
        yield SpecIssue(file, locate(loc), format_path(loc), _message(model, err, loc))


def _message(model: type[BaseModel], err: Any, loc: FieldPath) -> str:
    kind: str = err["type"]
    msg: str = err["msg"]
    value = err.get("input")
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        synonym = SYNONYMS.get(str(last).lower())
        close = (
            [synonym] if synonym in allowed else difflib.get_close_matches(str(last), allowed, n=1)
        )
        hint = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(allowed)}"
        return f"unknown field {last!r}; {hint}"
    if kind == "missing":
        return f"{last!r} is required"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "string_type" and isinstance(value, int | float):
        return f"expected a string, got {value!r}: put it in quotes ('{_yaml_scalar(value)}')"
    if kind == "greater_than_equal" and last in ("vmid", "start", "end", "templateVmid"):
        return f"VMID {value} is below 100, the lowest VMID Proxmox accepts"
    if kind == "model_type":
        return f"expected a mapping, got {_shown(value)}"
    if isinstance(value, dict | list):
        return msg
    return f"{msg}, got {_shown(value)}"


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: object) -> str:
    """A value as the user wrote it: strings quoted, numbers and booleans as YAML has them."""
    return repr(value) if isinstance(value, str) else _yaml_scalar(value)


def _fields_at(model: type[BaseModel], loc: FieldPath) -> list[str]:
    """The camelCase field names of the model found by following ``loc`` from ``model``."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            break
        if isinstance(part, int):
            continue
        by_alias = {f.alias or n: f for n, f in current.model_fields.items()}
        info = by_alias.get(part)
        current = _model_in(info.annotation) if info is not None else None
    if current is None:
        return []
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return None
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
