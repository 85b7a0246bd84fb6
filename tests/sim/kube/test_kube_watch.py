"""Watch streams through the official clients' ``Watch`` helpers (sync and ``kubernetes.aio``):
resume from a resourceVersion, bookmarks, ``timeoutSeconds``, selectors turning MODIFIED into
ADDED/DELETED, 410 Expired as an ERROR event (then relist and watch again), and the fault seams
that end open watches."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import requests
from kubernetes import watch
from kubernetes.client import ApiException

from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import aio_api_client

pytestmark = pytest.mark.integration


def label(core: Any, name: str, **labels: str | None) -> str:
    return str(core.patch_node(name, {"metadata": {"labels": labels}}).metadata.resource_version)


def events(core: Any, **kwargs: Any) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of every event until the stream's timeout."""
    out = []
    for ev in watch.Watch().stream(core.list_node, **kwargs):
        obj = ev["raw_object"]
        out.append(
            (ev["type"], obj["metadata"].get("name", ""), obj["metadata"]["resourceVersion"])
        )
    return out


def test_resume_from_resource_version(kube: KubeSim, core: Any) -> None:
    kube.add_node("a", ready=True)
    listed = core.list_node().metadata.resource_version
    rv1 = label(core, "a", x="1")
    kube.add_node("b")
    rv2 = label(core, "a", x="2")
    got = events(core, resource_version=listed, timeout_seconds=1)
    assert [(t, n) for t, n, _ in got] == [("MODIFIED", "a"), ("ADDED", "b"), ("MODIFIED", "a")]
    assert got[0][2] == rv1
    assert got[2][2] == rv2
    # from the newest revision: nothing old is replayed
    assert events(core, resource_version=rv2, timeout_seconds=1) == []
    # without a resourceVersion: synthetic ADDED for the current state
    assert sorted((t, n) for t, n, _ in events(core, timeout_seconds=1)) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_bookmarks_and_timeout(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    rv = core.list_node().metadata.resource_version
    started = time.monotonic()
    got = events(core, resource_version=rv, timeout_seconds=1, allow_watch_bookmarks=True)
    assert 0.9 < time.monotonic() - started < 5
    assert got
    assert {t for t, _, _ in got} == {"BOOKMARK"}
    assert all(int(r) >= int(rv) for _, _, r in got)
    # no bookmarks unless asked for
    assert events(core, resource_version=rv, timeout_seconds=1) == []


def test_selectors_turn_modified_into_added_and_deleted(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    rv = core.list_node().metadata.resource_version
    label(core, "a", gpu="yes")
    label(core, "a", other="1")
    label(core, "a", gpu=None)
    got = events(core, resource_version=rv, timeout_seconds=1, label_selector="gpu")
    assert [t for t, _, _ in got] == ["ADDED", "MODIFIED", "DELETED"]
    named = events(core, resource_version=rv, timeout_seconds=1, field_selector="metadata.name=b")
    assert named == []


def test_expired_resource_version_is_an_error_event_then_relist(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    old = core.list_node().metadata.resource_version
    for i in range(3):
        label(core, "a", n=str(i))
    compacted = kube.compact()
    # on the wire: HTTP 200 and one ERROR event with a 410 Expired Status
    r = requests.get(
        f"{kube.url}/api/v1/nodes?watch=1&resourceVersion={old}",
        headers={"Authorization": f"Bearer {kube.token}"},
        verify=str(kube.ca_path),
        timeout=5,
    )
    assert r.status_code == 200
    assert [json.loads(line) for line in r.text.splitlines()] == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({compacted})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    # the client raises it (with timeout_seconds given it does not retry)
    with pytest.raises(ApiException) as info:
        events(core, resource_version=old, timeout_seconds=1)
    assert info.value.status == 410
    assert info.value.reason == f"Expired: too old resource version: {old} ({compacted})"
    # relist and watch from the list's revision
    fresh = core.list_node().metadata.resource_version
    label(core, "a", n="after")
    assert [t for t, _, _ in events(core, resource_version=fresh, timeout_seconds=1)] == [
        "MODIFIED"
    ]


def test_history_window_compacts_old_revisions() -> None:
    from provisiond.sim.kube import Options
    from provisiond.sim.kube.testing import api_client, running_kube

    with running_kube(Options(history_size=2)) as small, api_client(small) as api:
        from kubernetes import client

        v1 = client.CoreV1Api(api)
        small.add_node("a")
        old = v1.list_node().metadata.resource_version
        for i in range(3):
            label(v1, "a", n=str(i))
        with pytest.raises(ApiException) as info:
            events(v1, resource_version=old, timeout_seconds=1)
        assert info.value.status == 410


async def test_aio_watch_resume_bookmark_and_expiry(kube: KubeSim) -> None:
    from kubernetes.aio import client
    from kubernetes.aio import watch as aio_watch

    kube.add_node("a")
    async with aio_api_client(kube) as api:
        v1 = client.CoreV1Api(api)
        listed = (await v1.list_node()).metadata.resource_version
        await v1.patch_node("a", {"metadata": {"labels": {"x": "1"}}})
        w = aio_watch.Watch()
        seen = [
            ev["type"]
            async for ev in w.stream(
                v1.list_node,
                resource_version=listed,
                timeout_seconds=1,
                allow_watch_bookmarks=True,
            )
        ]
        assert seen[0] == "MODIFIED"
        assert set(seen[1:]) == {"BOOKMARK"}
        kube.compact()
        with pytest.raises(client.exceptions.ApiException) as info:
            async for _ev in aio_watch.Watch().stream(
                v1.list_node, resource_version=listed, timeout_seconds=1
            ):
                pass
        assert info.value.status == 410


async def test_aio_watch_ended_by_the_server_resumes(kube: KubeSim) -> None:
    """A watch the server ends (no timeout given) is re-opened by the client from the last
    revision it saw: nothing is lost and nothing repeated."""
    from kubernetes.aio import client
    from kubernetes.aio import watch as aio_watch

    kube.add_node("a")
    async with aio_api_client(kube) as api:
        v1 = client.CoreV1Api(api)
        rv = (await v1.list_node()).metadata.resource_version
        seen: list[str] = []
        w = aio_watch.Watch()

        async def consume() -> None:
            async for ev in w.stream(v1.list_node, resource_version=rv):
                seen.append(ev["object"].metadata.labels.get("n", ""))
                if len(seen) == 2:
                    w.stop()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        await v1.patch_node("a", {"metadata": {"labels": {"n": "1"}}})
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(kube.drop_watches, abort=False) == 1
        await v1.patch_node("a", {"metadata": {"labels": {"n": "2"}}})
        await asyncio.wait_for(task, 10)
        assert seen == ["1", "2"]
        assert kube.request_counts()[("watch", "nodes")] == 2


def test_expire_and_drop_open_watches(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    rv = core.list_node().metadata.resource_version
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["events"] = events(core, resource_version=rv, timeout_seconds=30)
        except ApiException as exc:
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while kube.call(lambda c: len(c.store.watchers)) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube.expire_watches() == 1
    t.join(10)
    assert result["error"].status == 410
    assert kube.call(lambda c: len(c.store.watchers)) == 0
    # a dropped connection: the sync client sees the stream break
    with requests.get(
        f"{kube.url}/api/v1/nodes?watch=true",
        headers={"Authorization": f"Bearer {kube.token}"},
        verify=str(kube.ca_path),
        stream=True,
        timeout=5,
    ) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines))["type"] == "ADDED"
        assert kube.drop_watches() == 1
        with pytest.raises(requests.exceptions.RequestException):
            list(lines)
