"""The resources the simulator serves, and the discovery documents built from them.

One ``Resource`` per (group, version, plural). ``storage`` names the store bucket: core and
``events.k8s.io`` events share one (as on the real server), each read through its own version's
shape (``events.py``). Field labels are the ones each kind accepts in ``fieldSelector``; every
kind also accepts ``metadata.name`` and ``metadata.namespace``.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisiond.sim.kube.errors import Obj

VERSION_INFO: Obj = {
    "major": "1",
    "minor": "36",
    "emulationMajor": "1",
    "emulationMinor": "36",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "35",
    "gitVersion": "v1.36.3",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.1",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")  # no deletecollection


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status"; "eviction" is served separately
    field_labels: frozenset[str] = frozenset()
    storage: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def bucket(self) -> str:
        return self.storage or self.plural

    def has_status(self) -> bool:
        return "status" in self.subresources


NODE = Resource(
    "",
    "v1",
    "nodes",
    "node",
    "Node",
    namespaced=False,
    short_names=("no",),
    subresources=("status",),
    field_labels=frozenset({"spec.unschedulable"}),
)
POD = Resource(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    subresources=("status",),
    field_labels=frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        }
    ),
)
CORE_EVENT = Resource(
    "",
    "v1",
    "events",
    "event",
    "Event",
    namespaced=True,
    short_names=("ev",),
    field_labels=frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
)
EVENT = Resource(
    "events.k8s.io",
    "v1",
    "events",
    "event",
    "Event",
    namespaced=True,
    short_names=("ev",),
    storage="events",
    field_labels=frozenset(
        {"regarding.kind", "regarding.name", "regarding.namespace", "reason", "type"}
    ),
)
PDB = Resource(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    namespaced=True,
    short_names=("pdb",),
    subresources=("status",),
)
LEASE = Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", namespaced=True)
DAEMONSET = Resource(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    namespaced=True,
    verbs=("get", "list", "watch"),
    short_names=("ds",),
    categories=("all",),
)

RESOURCES: tuple[Resource, ...] = (NODE, POD, CORE_EVENT, EVENT, PDB, LEASE, DAEMONSET)
GROUPS: tuple[str, ...] = ("apps", "events.k8s.io", "policy", "coordination.k8s.io")


def find(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None


def _entry(r: Resource) -> Obj:
    out: Obj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    return out


def resource_list(group: str, version: str) -> Obj | None:
    """``APIResourceList`` for ``/api/v1`` or ``/apis/{group}/{version}``; None when unknown."""
    served = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not served:
        return None
    entries: list[Obj] = []
    for r in served:
        entries.append(_entry(r))
        entries.extend(
            {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }
            for sub in r.subresources
        )
        if r is POD:  # kubectl drain decides on eviction support from exactly this entry
            entries.append(
                {
                    "name": "pods/eviction",
                    "singularName": "",
                    "namespaced": True,
                    "group": "policy",
                    "version": "v1",
                    "kind": "Eviction",
                    "verbs": ["create"],
                }
            )
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}


def _group(name: str) -> Obj:
    gv = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def group_list() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in GROUPS]}


def api_group(name: str) -> Obj | None:
    if name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}
