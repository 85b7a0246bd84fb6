"""Leases with optimistic concurrency (sync and aio clients) and events through core/v1 and
events.k8s.io/v1, stored once and readable through both."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.store import micro_now
from provisiond.sim.kube.testing import aio_api_client

pytestmark = pytest.mark.integration

NS = "kube-system"


def lease(holder: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "provisiond"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": micro_now(),
            "renewTime": micro_now(),
            "leaseTransitions": 0,
        },
    }


def test_lease_conflicts(api: Any) -> None:
    coord = client.CoordinationV1Api(api)
    created = coord.create_namespaced_lease(NS, lease("a"))
    assert created.spec.holder_identity == "a"
    with pytest.raises(ApiException) as info:
        coord.create_namespaced_lease(NS, lease("b"))
    assert info.value.status == 409
    body = json.loads(info.value.body)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'leases.coordination.k8s.io "provisiond" already exists'
    assert body["details"] == {
        "name": "provisiond",
        "group": "coordination.k8s.io",
        "kind": "leases",
    }
    mine = coord.read_namespaced_lease("provisiond", NS)
    theirs = coord.read_namespaced_lease("provisiond", NS)
    mine.spec.renew_time = None
    mine.spec.holder_identity = "a2"
    coord.replace_namespaced_lease("provisiond", NS, mine)
    theirs.spec.holder_identity = "b"
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("provisiond", NS, theirs)
    assert info.value.status == 409
    assert json.loads(info.value.body)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "provisiond": the object '
        "has been modified; please apply your changes to the latest version and try again"
    )
    patched = coord.patch_namespaced_lease("provisiond", NS, {"spec": {"leaseTransitions": 1}})
    assert patched.spec.holder_identity == "a2"
    assert patched.spec.lease_transitions == 1
    assert [x.metadata.name for x in coord.list_namespaced_lease(NS).items] == ["provisiond"]


async def test_aio_lease_round(kube: KubeSim) -> None:
    from kubernetes.aio import client as aio

    async with aio_api_client(kube) as api:
        coord = aio.CoordinationV1Api(api)
        await coord.create_namespaced_lease(NS, lease("a"))
        got = await coord.read_namespaced_lease("provisiond", NS)
        stale = await coord.read_namespaced_lease("provisiond", NS)
        got.spec.holder_identity = "b"
        got.spec.lease_transitions = 1
        renewed = await coord.replace_namespaced_lease("provisiond", NS, got)
        assert int(renewed.metadata.resource_version) > int(stale.metadata.resource_version)
        with pytest.raises(aio.exceptions.ApiException) as info:
            await coord.replace_namespaced_lease("provisiond", NS, stale)
        assert info.value.status == 409


def test_events_both_versions(kube: KubeSim, core: Any, api: Any) -> None:
    node = kube.add_node("wk1")
    uid = node["metadata"]["uid"]
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "wk1.17a3"},
            "involvedObject": {"kind": "Node", "name": "wk1", "uid": uid, "apiVersion": "v1"},
            "reason": "Cordoned",
            "message": "cordoned for migration",
            "type": "Normal",
            "source": {"component": "provisiond"},
            "count": 1,
        },
    )
    ev = client.EventsV1Api(api)
    ev.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "wk1.17a4"},
            "eventTime": micro_now(),
            "reportingController": "provisiond.dev/controller",
            "reportingInstance": "provisiond-0",
            "action": "Drain",
            "reason": "Drained",
            "note": "evicted 3 pods",
            "type": "Normal",
            "regarding": {"kind": "Node", "name": "wk1", "uid": uid, "apiVersion": "v1"},
        },
    )
    # kubectl describe node's query: core/v1, all namespaces, involvedObject fields
    selector = (
        f"involvedObject.kind=Node,involvedObject.name=wk1,involvedObject.namespace=,"
        f"involvedObject.uid={uid}"
    )
    found = core.list_event_for_all_namespaces(field_selector=selector)
    assert [(e.reason, e.message) for e in found.items] == [
        ("Cordoned", "cordoned for migration"),
        ("Drained", "evicted 3 pods"),
    ]
    assert found.items[1].reporting_component == "provisiond.dev/controller"
    new_style = ev.list_namespaced_event("default", field_selector="reason=Drained")
    assert [(e.note, e.action, e.regarding.name) for e in new_style.items] == [
        ("evicted 3 pods", "Drain", "wk1")
    ]
    with pytest.raises(ApiException) as info:
        ev.create_namespaced_event(
            "default",
            {
                "metadata": {"name": "bad"},
                "eventTime": micro_now(),
                "reason": "X",
                "type": "Normal",
                "regarding": {"kind": "Node", "name": "wk1"},
            },
        )
    assert info.value.status == 422
    assert json.loads(info.value.body)["message"] == (
        'Event.events.k8s.io "bad" is invalid: [reportingController: Required value, '
        "reportingInstance: Required value, action: Required value]"
    )
