"""The REST semantics of each verb on top of the store (apiserver ``registry/generic``).

- **create**: name or ``generateName`` required; 409 AlreadyExists; server fields (uid,
  creationTimestamp, resourceVersion, generation 1 for PDBs) set; validated (422).
- **update** (PUT): the body's ``metadata.resourceVersion``, when set, must equal the stored one
  (409 Conflict); absent or ``"0"`` is an unconditional update (every kind served allows it).
  The main endpoint keeps the stored ``status``, ``/status`` keeps the stored ``spec``. uid and
  creationTimestamp cannot change. A write that changes nothing keeps the resourceVersion.
- **patch**: applied to the stored object (``patch.py``); a ``metadata.resourceVersion`` in the
  result that differs from the stored one is a precondition (409); then as update.
- **delete**: preconditions (409 with the storage layer's text); pods are deleted gracefully
  (``pods.py``); other kinds go at once and answer a ``Success`` Status.
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Callable
from typing import Any

from provisiond.sim.kube import errors as e
from provisiond.sim.kube import events, patch, validation
from provisiond.sim.kube.errors import KubeError, Obj
from provisiond.sim.kube.resources import EVENT, PDB, POD, Resource
from provisiond.sim.kube.selectors import field_matcher, label_matcher
from provisiond.sim.kube.store import Store

# how a pod DELETE is carried out (the kubelet's part lives in pods.py): store, pod, options
PodDeleter = Callable[[Obj, Obj], Obj]

_SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "selfLink")


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.delete_pod: PodDeleter | None = None  # set by pods.Kubelet

    # -- shapes ----------------------------------------------------------------------------
    def view(self, r: Resource, stored: Obj) -> Obj:
        if r is EVENT:
            return events.from_core(stored)
        return {"kind": r.kind, "apiVersion": r.api_version, **stored}

    def _stored(self, r: Resource, obj: Obj) -> Obj:
        if r is EVENT:
            return events.to_core(obj)
        out = dict(obj)
        out["kind"], out["apiVersion"] = r.kind, r.api_version
        return out

    def _load(self, r: Resource, ns: str, name: str) -> Obj:
        obj = self.store.get(r.bucket, ns, name)
        if obj is None:
            raise e.not_found(r.plural, r.group, name)
        return obj

    # -- reads -----------------------------------------------------------------------------
    def get(self, r: Resource, ns: str, name: str) -> Obj:
        return self.view(r, self._load(r, ns, name))

    def matcher(self, r: Resource, labels: str, fields: str) -> Callable[[Obj], bool]:
        """A predicate on served (view-shaped) objects; 400 on a bad selector."""
        by_label = label_matcher(labels)
        by_field = field_matcher(r, fields)
        return lambda obj: (
            by_label((obj.get("metadata") or {}).get("labels") or {}) and by_field(obj)
        )

    def list(self, r: Resource, ns: str | None, labels: str = "", fields: str = "") -> Obj:
        match = self.matcher(r, labels, fields)
        items = [o for o in (self.view(r, s) for s in self.store.all(r.bucket, ns)) if match(o)]
        for item in items:  # list items carry no kind/apiVersion on the real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": r.list_kind,
            "apiVersion": r.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    # -- writes ----------------------------------------------------------------------------
    def create(self, r: Resource, ns: str, body: Any) -> Obj:
        obj = _object(body)
        meta = obj.setdefault("metadata", {})
        _check_namespace(meta, ns, r)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise e.invalid_object(
                    r.kind,
                    r.group,
                    "",
                    [e.required("metadata.name", "name or generateName is required")],
                )
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5)
            )
        if r.namespaced:
            meta["namespace"] = ns
        for key in ("resourceVersion", "uid", "deletionTimestamp", "generation"):
            meta.pop(key, None)
        if self.store.get(r.bucket, ns, meta["name"]) is not None:
            raise e.already_exists(r.plural, r.group, meta["name"])
        problems = validation.validate(r.kind, obj)
        if r is EVENT:
            problems += events.validate_new_style(obj)
        if problems:
            raise e.invalid_object(r.kind, r.group, meta["name"], problems)
        if r is PDB:
            meta["generation"] = 1
            obj.setdefault("status", {})
        return self.view(r, self.store.create(r.bucket, self._stored(r, obj)))

    def update(self, r: Resource, ns: str, name: str, body: Any, sub: str = "") -> Obj:
        obj = _object(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != name:
            raise e.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on "
                f"the URL ({name})"
            )
        _check_namespace(meta, ns, r)
        stored = self._load(r, ns, name)
        rv = str(meta.get("resourceVersion") or "")
        if rv not in ("", "0") and rv != stored["metadata"]["resourceVersion"]:
            raise e.conflict(r.plural, r.group, name)
        return self._write(r, stored, obj, sub)

    def patch(  # noqa: PLR0917 - mirrors the request: target, content type, body, subresource
        self, r: Resource, ns: str, name: str, content_type: str, body: bytes, sub: str = ""
    ) -> Obj:
        stored = self._load(r, ns, name)
        current = self.view(r, stored)
        result = patch.apply(content_type, current, body)
        meta = result.get("metadata")
        if not isinstance(meta, dict):
            raise e.bad_request("metadata must be an object")
        rv = str(meta.get("resourceVersion") or "")
        if rv and rv != stored["metadata"]["resourceVersion"]:
            raise e.conflict(r.plural, r.group, name)
        if meta.get("name") != name:
            raise e.bad_request(
                f"the name of the object ({meta.get('name', '')}) does not match the name on "
                f"the URL ({name})"
            )
        return self._write(r, stored, result, sub)

    def _write(self, r: Resource, stored: Obj, new: Obj, sub: str) -> Obj:
        new = self._stored(r, new)
        meta = new.setdefault("metadata", {})
        for key in _SERVER_META:
            if key in stored["metadata"]:
                meta[key] = stored["metadata"][key]
            else:
                meta.pop(key, None)
        meta["namespace"] = stored["metadata"].get("namespace")
        if not r.namespaced:
            meta.pop("namespace", None)
        if r.has_status():
            keep = "spec" if sub == "status" else "status"
            if keep in stored:
                new[keep] = copy.deepcopy(stored[keep])
            else:
                new.pop(keep, None)
        if r is PDB and new.get("spec") != stored.get("spec"):
            meta["generation"] = int(stored["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = stored["metadata"]["resourceVersion"]
        if new == stored:  # nothing changed: no write, same resourceVersion
            return self.view(r, stored)
        problems = validation.validate(r.kind, new)
        if problems:
            raise e.invalid_object(r.kind, r.group, meta.get("name", ""), problems)
        return self.view(r, self.store.replace(r.bucket, new))

    def delete(self, r: Resource, ns: str, name: str, options: Obj) -> Obj:
        stored = self._load(r, ns, name)
        _preconditions(r, stored, options)
        if r is POD and self.delete_pod is not None:
            return self.view(r, self.delete_pod(stored, options))
        gone = self.store.delete(r.bucket, ns, name)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": e.details(name, r.group, r.plural, uid=gone["metadata"]["uid"]),
        }


def _object(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise e.bad_request("the body of the request must be a JSON object")
    return copy.deepcopy(body)


def _check_namespace(meta: Obj, ns: str, r: Resource) -> None:
    if r.namespaced and meta.get("namespace") not in (None, "", ns):
        raise e.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def _preconditions(r: Resource, stored: Obj, options: Obj) -> None:
    pre = options.get("preconditions") or {}
    meta = stored["metadata"]
    key = f"/registry/{r.plural}/" + "/".join(p for p in (meta.get("namespace"), meta["name"]) if p)
    for field, ours in (("UID", "uid"), ("ResourceVersion", "resourceVersion")):
        want = pre.get(ours)
        if want is not None and want != meta[ours]:
            raise KubeError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {e.qualified(r.plural, r.group)} "
                f'"{meta["name"]}": StorageError: invalid object, Code: 4, Key: {key}, '
                f"ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: {field} in "
                f"precondition: {want}, {field} in object meta: {meta[ours]}",
                {"name": meta["name"], **({"group": r.group} if r.group else {}), "kind": r.plural},
            )
