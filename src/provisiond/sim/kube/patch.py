"""PATCH bodies: JSON Patch (RFC 6902, the ``jsonpatch`` library), JSON merge patch (RFC 7386)
and strategic merge patch with the list rules of the Go types the simulator serves.

Strategic merge (apimachinery ``util/strategicpatch``): maps merge, ``null`` deletes a key; a
list merges by its patch merge key (``MERGE_KEYS``), as a set of scalars (``SCALAR_SETS``), or —
having no patch strategy, like ``spec.taints`` and ``spec.tolerations`` — is **replaced
whole**. Directives: ``$patch: replace|delete`` (map, list element), ``$retainKeys``,
``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>``. Paths are dotted field names with
list positions left out (``spec.containers.ports``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import jsonpointer

from provisiond.sim.kube.errors import KubeError, bad_request, unsupported_media_type

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"

MERGE_KEYS: dict[str, str] = {
    "metadata.ownerReferences": "uid",
    "metadata.managedFields": "manager",
    "status.conditions": "type",  # Node and Pod conditions
    "status.addresses": "type",
    "status.podIPs": "ip",
    "status.hostIPs": "ip",
    "spec.volumes": "name",
    "spec.imagePullSecrets": "name",
    "spec.hostAliases": "ip",
    **{
        f"spec.{c}{sub}": key
        for c in ("containers", "initContainers", "ephemeralContainers")
        for sub, key in (
            ("", "name"),
            (".ports", "containerPort"),
            (".env", "name"),
            (".volumeMounts", "mountPath"),
            (".volumeDevices", "devicePath"),
        )
    },
}
SCALAR_SETS = frozenset({"metadata.finalizers", "spec.podCIDRs"})

_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(original: Any, patch: Any, path: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive is not None and directive != "merge":
        raise bad_request(f"Unknown patch type: {directive} in map: {patch}")
    result = dict(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {}
    deletions: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_ORDER):
            orders[key[len(_ORDER) :]] = list(value or [])
        elif key.startswith(_DELETE_FROM):
            deletions[key[len(_DELETE_FROM) :]] = list(value or [])
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key), value, _join(path, key))
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, _join(path, key))
        else:
            result[key] = value
    for key, gone in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in gone]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _reorder(result[key], order, MERGE_KEYS.get(_join(path, key)))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        keep = set(retain) | {k for k in patch if not k.startswith("$")}
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(original: Any, patch: list[Any], path: str) -> list[Any]:
    current = list(original) if isinstance(original, list) else []
    if path in SCALAR_SETS:
        return current + [v for v in patch if v not in current]
    key = MERGE_KEYS.get(path)
    if key is None:  # no patch strategy: the list is replaced (spec.taints, tolerations, …)
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, cur in enumerate(current)
                if isinstance(cur, dict) and cur.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del current[index]
            continue
        if index is None:
            current.append(strategic_merge({}, item, path))
        else:
            current[index] = strategic_merge(current[index], item, path)
    return current


def _reorder(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(v: Any) -> Any:
        return v.get(key) if key is not None and isinstance(v, dict) else v

    rank = {
        json.dumps(ident(o) if key is None else o.get(key), sort_keys=True): i
        for i, o in enumerate(order)
        if key is None or isinstance(o, dict)
    }
    last = len(rank)
    return sorted(items, key=lambda v: rank.get(json.dumps(ident(v), sort_keys=True), last))


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def apply(content_type: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The object after applying ``body`` of ``content_type`` to ``original`` (a copy)."""
    kind = media_type(content_type)
    if kind not in (JSON_PATCH, MERGE_PATCH, STRATEGIC):
        raise unsupported_media_type()
    try:
        doc = json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if kind == JSON_PATCH:
        if not isinstance(doc, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            result = jsonpatch.JsonPatch(doc).apply(copy.deepcopy(original))
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise KubeError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {exc}",
                {},
            ) from exc
    elif not isinstance(doc, dict):
        raise bad_request(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    elif kind == MERGE_PATCH:
        result = merge_patch(original, doc)
    else:
        result = strategic_merge(original, doc)
    if not isinstance(result, dict):
        raise bad_request("the patch did not produce an object")
    return result
