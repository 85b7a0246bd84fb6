"""Every kind the simulator serves, as it comes off the wire, checked against the Kubernetes
OpenAPI schemas (``kubernetes-validate``, strict): objects, lists, discovery documents, error
Statuses and watch events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kube_schema import check, check_list

from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.store import micro_now

pytestmark = pytest.mark.integration

POD = {
    "metadata": {
        "name": "web-1",
        "labels": {"app": "web"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d9c",
                "uid": "6f1c2b1e-0000-4000-8000-000000000001",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {"nodeName": "wk1", "containers": [{"name": "web", "image": "nginx:1.27"}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}


def seed(kube: KubeSim) -> None:
    kube.add_node("wk1", ready=True, gpus=2, control_plane=True)
    kube.create("pods", POD)
    kube.create(
        "poddisruptionbudgets",
        {
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
        group="policy",
    )
    kube.create(
        "leases",
        {
            "metadata": {"name": "provisiond"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": micro_now()},
        },
        group="coordination.k8s.io",
    )
    kube.create(
        "events",
        {
            "metadata": {"name": "wk1.1"},
            "involvedObject": {"kind": "Node", "name": "wk1", "apiVersion": "v1"},
            "reason": "Cordoned",
            "message": "cordoned by provisiond",
            "type": "Normal",
            "source": {"component": "provisiond"},
        },
    )


PATHS = [
    "/api/v1/nodes",
    "/api/v1/nodes/wk1",
    "/api/v1/nodes/wk1/status",
    "/api/v1/pods",
    "/api/v1/namespaces/default/pods/web-1",
    "/apis/policy/v1/poddisruptionbudgets",
    "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases/provisiond",
    "/api/v1/events",
    "/api/v1/namespaces/default/events/wk1.1",
    "/apis/events.k8s.io/v1/events",
    "/apis/apps/v1/daemonsets",
    "/api",
    "/apis",
    "/apis/policy",
    "/api/v1",
    "/apis/policy/v1",
    "/apis/coordination.k8s.io/v1",
    "/apis/events.k8s.io/v1",
    "/apis/apps/v1",
    "/api/v1/nodes/missing",
    "/api/v1/pods?fieldSelector=spec.bogus%3D1",
]


def test_every_served_kind_matches_the_schema(kube: KubeSim) -> None:
    seed(kube)
    headers = {"Authorization": f"Bearer {kube.token}"}
    kinds = set()
    for path in PATHS:
        r = requests.get(kube.url + path, headers=headers, verify=str(kube.ca_path), timeout=5)
        doc = r.json()
        kinds.add(doc["kind"])
        if doc["kind"].endswith("List") and "items" in doc:
            check_list(doc)
        else:
            check(doc)
    assert kinds >= {
        "NodeList",
        "Node",
        "PodList",
        "Pod",
        "PodDisruptionBudgetList",
        "PodDisruptionBudget",
        "LeaseList",
        "Lease",
        "EventList",
        "Event",
        "DaemonSetList",
        "APIVersions",
        "APIGroupList",
        "APIGroup",
        "APIResourceList",
        "Status",
    }


def test_watch_events_match_the_schema(kube: KubeSim) -> None:
    seed(kube)
    headers = {"Authorization": f"Bearer {kube.token}"}
    for path in ("/api/v1/nodes", "/api/v1/pods", "/apis/events.k8s.io/v1/events"):
        r = requests.get(
            f"{kube.url}{path}?watch=1&timeoutSeconds=1&allowWatchBookmarks=true",
            headers=headers,
            verify=str(kube.ca_path),
            timeout=10,
        )
        assert r.headers["Content-Type"].startswith("application/json")
        events: list[dict[str, Any]] = [json.loads(line) for line in r.text.splitlines()]
        assert {e["type"] for e in events} == {"ADDED", "BOOKMARK"}
        for ev in events:
            check(ev, "WatchEvent")
            if ev["type"] == "ADDED":
                check(ev["object"])
