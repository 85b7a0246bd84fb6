"""Events: stored once in the core/v1 shape, served through core/v1 and events.k8s.io/v1.

As on the real server both versions read and write the same objects, so an event a controller
writes through ``events.k8s.io/v1`` is listed by ``kubectl get events`` (core/v1) too. Field
mapping (events.k8s.io ↔ core): ``regarding``↔``involvedObject``, ``note``↔``message``,
``reportingController``↔``reportingComponent``, ``deprecatedSource``↔``source``,
``deprecatedFirstTimestamp``/``LastTimestamp``/``Count``↔``firstTimestamp``/``lastTimestamp``/
``count``; ``series.lastObservedTime`` is a MicroTime in both. New-style events must carry
``eventTime`` (422 ``eventTime: Required value``), as the OpenAPI marks it required.
"""

from __future__ import annotations

from provisiond.sim.kube import errors as e
from provisiond.sim.kube.errors import FieldError, Obj

_RENAMES = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)
# spelled alike in both versions
_SHARED = (
    "metadata",
    "reportingInstance",
    "action",
    "reason",
    "type",
    "eventTime",
    "related",
    "series",
)


def _shared(obj: Obj, api_version: str) -> Obj:
    return {"kind": "Event", "apiVersion": api_version} | {k: obj[k] for k in _SHARED if k in obj}


def to_core(obj: Obj) -> Obj:
    """An events.k8s.io/v1 Event in the stored core/v1 shape."""
    out = _shared(obj, "v1")
    out.update({old: obj[new] for new, old in _RENAMES if new in obj})
    out.setdefault("involvedObject", {})
    return out


def from_core(obj: Obj) -> Obj:
    """A stored core/v1 Event as events.k8s.io/v1 serves it."""
    out = _shared(obj, "events.k8s.io/v1")
    out.update({new: obj[old] for new, old in _RENAMES if obj.get(old) not in (None, {}, "")})
    out.setdefault("eventTime", None)
    return out


def validate_new_style(obj: Obj) -> list[FieldError]:
    """events.k8s.io/v1 create: the fields a new-style event must carry."""
    out: list[FieldError] = []
    if not obj.get("eventTime"):
        out.append(e.required("eventTime"))
    out += [
        e.required(key)
        for key in ("reportingController", "reportingInstance", "action", "reason")
        if not obj.get(key)
    ]
    if obj.get("type") not in ("Normal", "Warning"):
        out.append(e.not_supported("type", obj.get("type") or "", ("Normal", "Warning")))
    return out
