"""Nodes through the official sync client: get/list, the three patch content types, update with
resourceVersion (409), the status subresource split, validation (422 with the real texts),
discovery, authentication and unsupported patch types."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client import ApiException

from provisiond.sim.kube import KubeSim

pytestmark = pytest.mark.integration

NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["code"] == exc.status
    return body


def fails(call: Any, *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture
def node(kube: KubeSim) -> str:
    kube.add_node("wk1", ready=True, labels={"pool": "gpu"}, system_uuid="ABC-1")
    return "wk1"


def test_get_and_list(core: Any, node: str) -> None:
    got = core.read_node(node)
    assert got.metadata.labels["kubernetes.io/hostname"] == "wk1"
    assert got.status.node_info.system_uuid == "abc-1"
    listed = core.list_node()
    assert [n.metadata.name for n in listed.items] == ["wk1"]
    assert int(listed.metadata.resource_version) >= int(got.metadata.resource_version)
    assert core.list_node(label_selector="pool=gpu,!missing").items
    assert not core.list_node(label_selector="pool in (cpu)").items
    assert core.list_node(field_selector="metadata.name=wk1").items
    err = fails(core.list_node, field_selector="spec.bogus=1")
    assert err.status == 400
    assert status_of(err)["message"] == "field label not supported: spec.bogus"
    err = fails(core.read_node, "nope")
    assert status_of(err) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'nodes "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "nodes"},
        "code": 404,
    }


def test_patch_content_types(core: Any, node: str) -> None:
    # a dict body goes as strategic merge: status.conditions merge by "type"
    before = core.read_node_status(node)
    extra = {"type": "GpuHealthy", "status": "True", "reason": "Probe", "message": "ok"}
    core.patch_node_status(node, {"status": {"conditions": [extra]}})
    types = [c.type for c in core.read_node_status(node).status.conditions]
    assert types == [c.type for c in before.status.conditions] + ["GpuHealthy"]
    # JSON merge patch replaces every list
    core.patch_node_status(
        node,
        {"status": {"conditions": [extra]}},
        _content_type="application/merge-patch+json",
    )
    assert [c.type for c in core.read_node_status(node).status.conditions] == ["GpuHealthy"]
    # a list body goes as RFC 6902 JSON Patch
    core.patch_node(node, [{"op": "add", "path": "/metadata/labels/zone", "value": "a"}])
    assert core.read_node(node).metadata.labels["zone"] == "a"
    err = fails(core.patch_node, node, [{"op": "remove", "path": "/metadata/labels/absent"}])
    assert err.status == 422
    # null deletes a key in strategic and merge patches alike
    core.patch_node(node, {"metadata": {"labels": {"zone": None}}})
    assert "zone" not in core.read_node(node).metadata.labels


def test_strategic_merge_replaces_taints(core: Any, node: str) -> None:
    a = {"key": "a", "value": "1", "effect": "NoSchedule"}
    b = {"key": "b", "effect": "NoExecute"}
    core.patch_node(node, {"spec": {"taints": [a, b]}})
    core.patch_node(node, {"spec": {"taints": [{"key": "c", "effect": "PreferNoSchedule"}]}})
    taints = core.read_node(node).spec.taints
    assert [(t.key, t.effect) for t in taints] == [("c", "PreferNoSchedule")]


def test_stale_update_conflicts(core: Any, node: str) -> None:
    first = core.read_node(node)
    second = core.read_node(node)
    first.metadata.labels["x"] = "1"
    core.replace_node(node, first)
    second.metadata.labels["x"] = "2"
    err = fails(core.replace_node, node, second)
    assert err.status == 409
    body = status_of(err)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on nodes "wk1": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "wk1", "kind": "nodes"}
    # without a resourceVersion the update is unconditional (nodes allow it)
    second.metadata.resource_version = None
    assert core.replace_node(node, second).metadata.labels["x"] == "2"
    # a patch carrying a resourceVersion is a precondition
    err = fails(core.patch_node, node, {"metadata": {"resourceVersion": "1", "labels": {"y": "1"}}})
    assert err.status == 409


def test_unchanged_write_keeps_resource_version(core: Any, node: str) -> None:
    rv = core.read_node(node).metadata.resource_version
    core.patch_node(node, {"metadata": {"labels": {"pool": "gpu"}}})
    assert core.read_node(node).metadata.resource_version == rv


def test_status_subresource_split(core: Any, node: str) -> None:
    n = core.read_node(node)
    n.spec.unschedulable = True
    n.status.capacity["cpu"] = "99"
    updated = core.replace_node(node, n)
    assert updated.spec.unschedulable is True
    assert updated.status.capacity["cpu"] == "4"  # status changes ignored on the main endpoint
    n = core.read_node(node)
    n.spec.unschedulable = False
    n.status.capacity["cpu"] = "99"
    updated = core.replace_node_status(node, n)
    assert updated.status.capacity["cpu"] == "99"
    assert updated.spec.unschedulable is True  # spec changes ignored on /status


def test_invalid_labels_and_taints(core: Any, node: str) -> None:
    err = fails(core.patch_node, node, {"metadata": {"labels": {"-bad": "x"}}})
    body = status_of(err)
    assert err.status == 422
    assert body["reason"] == "Invalid"
    assert (
        body["message"]
        == f'Node "wk1" is invalid: metadata.labels: Invalid value: "-bad": {NAME_RULE}'
    )
    assert body["details"]["kind"] == "Node"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "-bad": {NAME_RULE}',
            "field": "metadata.labels",
        }
    ]
    err = fails(core.patch_node, node, {"metadata": {"labels": {"ok": "x" * 64}}})
    assert "must be no more than 63 bytes" in status_of(err)["message"]
    taints = [
        {"key": "k", "value": "v", "effect": "NoSchedule"},
        {"key": "k", "value": "w", "effect": "NoSchedule"},
        {"key": "e", "effect": "Foo"},
        {"key": "r"},
    ]
    body = status_of(fails(core.patch_node, node, {"spec": {"taints": taints}}))
    assert body["message"] == (
        'Node "wk1" is invalid: ['
        'spec.taints[1]: Duplicate value: core.Taint{Key:"k", Value:"w", Effect:"NoSchedule", '
        "TimeAdded:<nil>}: taints must be unique by key and effect pair, "
        'spec.taints[2].effect: Unsupported value: "Foo": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute", '
        "spec.taints[3].effect: Required value]"
    )
    assert [c["field"] for c in body["details"]["causes"]] == [
        "spec.taints[1]",
        "spec.taints[2].effect",
        "spec.taints[3].effect",
    ]
    # same key with two effects is fine
    ok = [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"}]
    assert len(core.patch_node(node, {"spec": {"taints": ok}}).spec.taints) == 2


def test_discovery(api: Any) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"policy", "coordination.k8s.io", "events.k8s.io", "apps"} <= groups
    resources = client.CoreV1Api(api).get_api_resources().resources
    eviction = next(r for r in resources if r.name == "pods/eviction")
    assert (eviction.group, eviction.version, eviction.kind) == ("policy", "v1", "Eviction")
    assert "nodes/status" in {r.name for r in resources}
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")


def test_auth_and_media_types(kube: KubeSim, node: str) -> None:
    url = f"{kube.url}/api/v1/nodes/{node}"
    ca = str(kube.ca_path)
    r = requests.get(url, headers={"Authorization": "Bearer wrong"}, verify=ca, timeout=5)
    assert r.status_code == 401
    assert r.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    lower = {"Authorization": f"bearer {kube.token}"}  # the in-cluster loader's spelling
    assert requests.get(url, headers=lower, verify=ca, timeout=5).status_code == 200
    r = requests.patch(
        url,
        data="{}",
        headers={**lower, "Content-Type": "application/json"},
        verify=ca,
        timeout=5,
    )
    assert r.status_code == 415
    assert r.json()["reason"] == "UnsupportedMediaType"
    assert r.json()["message"].startswith(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json"
    )
