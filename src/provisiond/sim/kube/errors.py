"""The API server's errors as ``Status`` objects, with the real reasons and message texts.

``KubeError`` carries one Status; the server writes it with ``code`` as the HTTP status. The
constructors mirror apimachinery's ``api/errors`` (NewNotFound, NewConflict, NewInvalid, …): for
NotFound, AlreadyExists and Conflict ``details.kind`` is the *resource* (plural), for Invalid it
is the *Kind*; a core-group ``details`` has no ``group``. Field errors render as
``<field>: <type phrase>[: <value>][: <detail>]`` and several are joined as ``[e1, e2]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SUPPORTED_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


@dataclass(frozen=True, slots=True)
class FieldError:
    """apimachinery ``field.Error``: ``reason`` is the cause type (``FieldValueInvalid``…)."""

    reason: str
    field: str
    phrase: str  # "Invalid value", "Required value", …
    value: object = None
    has_value: bool = False
    detail: str = ""

    @property
    def body(self) -> str:
        text = self.phrase
        if self.has_value:
            text += f": {go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"

    def cause(self) -> Obj:
        return {"reason": self.reason, "message": self.body, "field": self.field}


def go_value(value: object) -> str:
    """A value as ``field.Error`` prints it: strings with Go ``%q``, numbers and bools bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"))


def invalid(field: str, value: object, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, "Invalid value", value, True, detail)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, "Required value", detail=detail)


def not_supported(field: str, value: object, supported: tuple[str, ...]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", field, "Unsupported value", value, True, detail)


def duplicate(field: str, value: str, detail: str) -> FieldError:
    # the value is a Go ``%#v`` struct, printed bare (not quoted)
    return FieldError("FieldValueDuplicate", field, "Duplicate value", detail=f"{value}: {detail}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, "Forbidden", detail=detail)


class KubeError(Exception):
    """An error answer: ``status`` is the full Status object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after: int | None = None

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.details:
            out["details"] = self.details
        out["code"] = self.code
        return out


def details(name: str, group: str, kind: str, **extra: object) -> Obj:
    """A Status' ``details`` naming one object (``extra``: the non-empty ones, e.g. ``uid``)."""
    out: Obj = {"name": name}
    if group:
        out["group"] = group
    out["kind"] = kind
    out.update({k: v for k, v in extra.items() if v})
    return out


def qualified(resource: str, group: str) -> str:
    """A GroupResource as messages print it: ``nodes``, ``leases.coordination.k8s.io``."""
    return f"{resource}.{group}" if group else resource


# reason -> (HTTP status, message; ``{object}`` stands for ``<resource> "<name>"``)
_OBJECT_ERRORS = {
    "NotFound": (404, "{object} not found"),
    "AlreadyExists": (409, "{object} already exists"),
    "Conflict": (
        409,
        "Operation cannot be fulfilled on {object}: the object has been modified; please apply "
        "your changes to the latest version and try again",
    ),
}


def _object_error(reason: str, resource: str, group: str, name: str) -> KubeError:
    code, text = _OBJECT_ERRORS[reason]
    what = f'{qualified(resource, group)} "{name}"'
    return KubeError(code, reason, text.format(object=what), details(name, group, resource))


def not_found(resource: str, group: str, name: str) -> KubeError:
    return _object_error("NotFound", resource, group, name)


def already_exists(resource: str, group: str, name: str) -> KubeError:
    return _object_error("AlreadyExists", resource, group, name)


def conflict(resource: str, group: str, name: str) -> KubeError:
    return _object_error("Conflict", resource, group, name)


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> KubeError:
    """422 ``<Kind> "<name>" is invalid: <aggregate>`` with one cause per field error."""
    texts = list(dict.fromkeys(str(e) for e in errors))
    aggregate = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return KubeError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name}" is invalid: {aggregate}',
        details(name, group, kind, causes=[e.cause() for e in errors]),
    )


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def unauthorized() -> KubeError:
    return KubeError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(action: str, resource: str) -> KubeError:
    return KubeError(
        405,
        "MethodNotAllowed",
        f'{action} is not supported on resources of kind "{resource}"',
        {},
    )


def unsupported_media_type() -> KubeError:
    return KubeError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(SUPPORTED_PATCH_TYPES),
    )


def expired(message: str) -> KubeError:
    return KubeError(410, "Expired", message)


def internal(text: str) -> KubeError:
    return KubeError(
        500,
        "InternalError",
        f"Internal error occurred: {text}",
        {"causes": [{"message": text}]},
    )


def too_large_rv(rv: int, current: int) -> KubeError:
    return KubeError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {rv}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def generic(code: int, message: str | None = None) -> KubeError:
    """An injected failure: the reason apimachinery uses for that code."""
    reason, text = _BY_CODE.get(code, ("", "error"))
    return KubeError(code, reason, message or text)


_BY_CODE = {
    429: ("TooManyRequests", "Too many requests: please try again later"),
    500: ("InternalError", "Internal error occurred: injected failure"),
    502: ("", "Bad Gateway"),
    503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
}
