"""Pods, PodDisruptionBudgets and evictions through the official sync client: selectors across
namespaces, graceful deletion, delete preconditions, PDB status arithmetic, eviction 429 with the
real message, then 201 once the budget allows."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from provisiond.sim.kube import KubeSim

pytestmark = pytest.mark.integration


def pod(
    name: str,
    node: str | None = "wk1",
    *,
    app: str = "web",
    ready: bool = True,
    phase: str = "Running",
    owner: str = "web-5d9c",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.27"}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "labels": {"app": app},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner,
                    "uid": "6f1c2b1e-0000-4000-8000-000000000001",
                    "controller": True,
                }
            ],
        },
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pdb(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


def evict(core: Any, name: str, ns: str = "default") -> Any:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns))
    return core.create_namespaced_pod_eviction(name, ns, body)


def wait_gone(core: Any, name: str, ns: str = "default") -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        names = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
        if name not in names:
            return
        time.sleep(0.02)
    raise AssertionError(f"pod {name} still there")


def test_list_by_node_and_labels_across_namespaces(kube: KubeSim, core: Any) -> None:
    kube.create("pods", pod("a"))
    kube.create("pods", pod("b", "wk2"))
    kube.create("pods", pod("c", app="db"), namespace="kube-system")
    listed = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=wk1")
    assert sorted((p.metadata.namespace, p.metadata.name) for p in listed.items) == [
        ("default", "a"),
        ("kube-system", "c"),
    ]
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["a", "b"]
    both = core.list_pod_for_all_namespaces(
        field_selector="spec.nodeName=wk1,status.phase=Running", label_selector="app=web"
    )
    assert [p.metadata.name for p in both.items] == ["a"]
    assert core.read_namespaced_pod("c", "kube-system").spec.node_name == "wk1"


def test_graceful_delete_and_preconditions(kube: KubeSim, core: Any) -> None:
    created = core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_pod(
            "a", "default", body=client.V1DeleteOptions(preconditions={"uid": "other"})
        )
    assert info.value.status == 409
    assert (
        "Precondition failed: UID in precondition: other" in json.loads(info.value.body)["message"]
    )
    deleting = core.delete_namespaced_pod("a", "default")
    assert deleting.metadata.deletion_timestamp is not None
    assert deleting.metadata.deletion_grace_period_seconds == 30
    assert deleting.metadata.uid == created.metadata.uid
    wait_gone(core, "a")
    # gracePeriodSeconds=0 removes at once
    core.create_namespaced_pod("default", pod("b"))
    core.delete_namespaced_pod("b", "default", grace_period_seconds=0)
    wait_gone(core, "b")


def test_pdb_status_arithmetic(kube: KubeSim, core: Any, api: Any) -> None:
    policy = client.PolicyV1Api(api)
    for i in range(3):
        kube.create("pods", pod(f"w{i}"))
    kube.create("pods", pod("w3", ready=False))
    policy.create_namespaced_pod_disruption_budget("default", pdb(min_available=2))
    status = policy.read_namespaced_pod_disruption_budget("web", "default").status
    assert (status.expected_pods, status.current_healthy, status.desired_healthy) == (4, 3, 2)
    assert status.disruptions_allowed == 1
    assert status.observed_generation == 1
    assert status.conditions[0].type == "DisruptionAllowed"
    assert status.conditions[0].status == "True"
    # maxUnavailable as a percentage of the controller's scale, rounded up
    kube.call(lambda c: c.disruption.scales.__setitem__(("default", "ReplicaSet", "web-5d9c"), 5))
    policy.patch_namespaced_pod_disruption_budget(
        "web", "default", {"spec": {"minAvailable": None, "maxUnavailable": "30%"}}
    )
    got = policy.read_namespaced_pod_disruption_budget("web", "default")
    assert got.metadata.generation == 2
    assert got.status.observed_generation == 2
    assert (got.status.expected_pods, got.status.desired_healthy) == (5, 3)
    assert got.status.disruptions_allowed == 0
    listed = policy.list_pod_disruption_budget_for_all_namespaces()
    assert [p.metadata.name for p in listed.items] == ["web"]


def test_eviction_honours_the_budget(kube: KubeSim, core: Any, api: Any) -> None:
    policy = client.PolicyV1Api(api)
    for i in range(3):
        kube.create("pods", pod(f"w{i}"))
    policy.create_namespaced_pod_disruption_budget("default", pdb(min_available=2))
    evict(core, "w0")
    assert core.read_namespaced_pod("w0", "default").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as info:
        evict(core, "w1")
    assert info.value.status == 429
    assert json.loads(info.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
                }
            ]
        },
        "code": 429,
    }
    assert core.read_namespaced_pod("w1", "default").metadata.deletion_timestamp is None
    # a replacement becomes ready: the budget allows one more
    kube.create("pods", pod("w3"))
    evict(core, "w1")
    wait_gone(core, "w1")
    status = policy.read_namespaced_pod_disruption_budget("web", "default").status
    assert (status.current_healthy, status.disruptions_allowed) == (2, 0)


def test_eviction_without_budget_pending_and_errors(kube: KubeSim, core: Any, api: Any) -> None:
    policy = client.PolicyV1Api(api)
    kube.create("pods", pod("free", app="other"))
    evict(core, "free")
    wait_gone(core, "free")
    kube.create("pods", pod("pending", None, phase="Pending", ready=False))
    policy.create_namespaced_pod_disruption_budget("default", pdb(min_available=5))
    evict(core, "pending")  # Pending pods skip the budget
    wait_gone(core, "pending")
    with pytest.raises(ApiException) as info:
        evict(core, "nope")
    assert info.value.status == 404
    assert json.loads(info.value.body)["message"] == 'pods "nope" not found'
    kube.create("pods", pod("w0"))
    policy.create_namespaced_pod_disruption_budget("default", pdb("web2", max_unavailable=1))
    with pytest.raises(ApiException) as info:
        evict(core, "w0")
    assert info.value.status == 500
    assert json.loads(info.value.body)["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does "
        "not support."
    )


def test_pdb_still_being_processed(kube: KubeSim, core: Any, api: Any) -> None:
    policy = client.PolicyV1Api(api)
    for i in range(3):
        kube.create("pods", pod(f"w{i}"))
    policy.create_namespaced_pod_disruption_budget("default", pdb(min_available=1))
    kube.call(lambda c: setattr(c.disruption, "paused", True))
    policy.patch_namespaced_pod_disruption_budget("web", "default", {"spec": {"minAvailable": 2}})
    with pytest.raises(ApiException) as info:
        evict(core, "w0")
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "10"
    body = json.loads(info.value.body)
    assert body["details"]["retryAfterSeconds"] == 10
    assert body["details"]["causes"][0]["message"] == (
        "The disruption budget web is still being processed by the server."
    )
