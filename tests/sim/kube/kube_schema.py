"""Validate objects the simulator serves against the Kubernetes OpenAPI schemas as shipped by
``kubernetes-validate`` (JSON Schema per kind, strict: unknown fields are errors).

``kubernetes_validate.validate`` finds a schema by ``kind`` and ``apiVersion``; the meta kinds
(Status, APIResourceList, …) have ``apiVersion: v1`` but live in ``<kind>-meta-v1.json``, so
those are looked up by file name with the same registry of definitions.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils
from referencing import Registry, Resource

VERSION = "1.36.0"
META_KINDS = {"Status", "APIResourceList", "APIGroupList", "APIGroup", "APIVersions", "WatchEvent"}


def check(obj: dict[str, Any], kind: str | None = None, api_version: str | None = None) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a valid ``kind``.

    ``kind``/``api_version`` name the schema for objects that carry neither (list items)."""
    kind = kind or obj["kind"]
    api_version = api_version or obj.get("apiVersion", "v1")
    if kind in META_KINDS:
        schema_dir = f"kubernetes-json-schema/v{VERSION}-local-strict"
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-meta-v1.json", VERSION)
        defs = utils.schema_contents(f"{schema_dir}/_definitions.json", VERSION)
        registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
        registry = Resource.from_contents(defs) @ registry
        jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(obj)
        return
    data = {**obj, "kind": kind, "apiVersion": api_version}
    try:
        kubernetes_validate.validate(data, VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{kind} {api_version}: {exc}") from exc


def check_list(doc: dict[str, Any]) -> None:
    check(doc)
    item_kind = doc["kind"].removesuffix("List")
    for item in doc["items"]:
        check(item, item_kind, doc["apiVersion"])
