"""Watch streams (apiserver ``endpoints/handlers/watch.go`` and the watch cache).

HTTP 200, ``Content-Type: application/json``, chunked; headers are flushed before any event.
Each event is one JSON line ``{"type": …, "object": …}``.

- Start: no ``resourceVersion`` or ``"0"`` → a synthetic ADDED per current object, then
  changes; ``N`` → the events after N from the history. The snapshot and the subscription are
  taken together on the loop, so no write falls between them.
- ``N`` older than the compacted revision → one ERROR event carrying 410 ``Expired``
  ``too old resource version: N (compacted)`` and the end of the stream (never an HTTP 410).
- Selectors are applied to both states of a MODIFIED: an object entering the selection arrives
  as ADDED, one leaving it as DELETED.
- ``allowWatchBookmarks``: a BOOKMARK (bare kind + ``metadata.resourceVersion``) every
  ``bookmark_interval`` seconds while idle and once before ``timeoutSeconds`` ends the stream.
  A bookmark is sent only with the queue empty, so its revision covers every event sent.
- ``timeoutSeconds`` ends the body normally; without it the stream lasts 1800 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from provisiond.sim.kube import errors as e
from provisiond.sim.kube.errors import Obj
from provisiond.sim.kube.registry import Registry
from provisiond.sim.kube.resources import Resource
from provisiond.sim.kube.store import Event, Store

DEFAULT_TIMEOUT = 1800.0


def flag(value: str | None) -> bool:
    """apimachinery's bool conversion: false only when absent, ``0`` or ``false``."""
    return value is not None and value.lower() not in ("0", "false")


def _line(kind: str, obj: Obj) -> bytes:
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()


def _translate(
    ev: Event, view: Callable[[Obj], Obj], match: Callable[[Obj], bool]
) -> tuple[str, Obj] | None:
    new = view(ev.obj)
    if ev.type == "DELETED":
        return ("DELETED", new) if match(new) else None
    now_in = match(new)
    was_in = ev.old is not None and match(view(ev.old))
    if ev.type == "ADDED":
        return ("ADDED", new) if now_in else None
    if now_in and was_in:
        return ("MODIFIED", new)
    if now_in:
        return ("ADDED", new)
    if was_in:
        return ("DELETED", new)
    return None


async def serve(
    request: web.Request,
    store: Store,
    registry: Registry,
    r: Resource,
    namespace: str | None,
    *,
    bookmark_interval: float,
) -> web.StreamResponse:
    q = request.query
    match = registry.matcher(r, q.get("labelSelector", ""), q.get("fieldSelector", ""))
    rv_text = q.get("resourceVersion", "")
    if rv_text not in ("", "0") and not rv_text.isdigit():
        raise e.bad_request(f'invalid resource version "{rv_text}"')
    try:
        timeout = float(q["timeoutSeconds"]) if "timeoutSeconds" in q else DEFAULT_TIMEOUT
    except ValueError as exc:
        raise e.bad_request(f"invalid timeoutSeconds: {q['timeoutSeconds']}") from exc
    bookmarks = flag(q.get("allowWatchBookmarks"))
    if flag(q.get("sendInitialEvents")):
        raise e.invalid_object(
            "ListOptions",
            "meta.k8s.io",
            "",
            [
                e.forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless "
                    "the WatchList feature gate is enabled",
                )
            ],
        )

    def view(obj: Obj) -> Obj:
        return registry.view(r, obj)

    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    since = int(rv_text) if rv_text not in ("", "0") else None
    if since is not None and since < store.compacted:
        await resp.prepare(request)
        expired = e.expired(f"too old resource version: {since} ({store.compacted})").status()
        await resp.write(_line("ERROR", expired))
        await resp.write_eof()
        return resp
    # snapshot and subscription in one step of the loop (no await in between)
    if since is None:
        initial = [("ADDED", o) for o in (view(s) for s in store.all(r.bucket, namespace))]
        initial = [(k, o) for k, o in initial if match(o)]
    else:
        initial = []
        for ev in store.since(r.bucket, since):
            if namespace is None or (ev.obj.get("metadata") or {}).get("namespace") == namespace:
                out = _translate(ev, view, match)
                if out is not None:
                    initial.append(out)
    watcher = store.watch(r.bucket, namespace)
    watcher.transport = request.transport
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        await resp.prepare(request)
        for kind, obj in initial:
            await resp.write(_line(kind, obj))
        next_bookmark = loop.time() + bookmark_interval
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            wait = min(left, next_bookmark - loop.time()) if bookmarks else left
            try:
                item = await asyncio.wait_for(watcher.queue.get(), max(wait, 0.0))
            except TimeoutError:
                if bookmarks and watcher.queue.empty() and loop.time() >= next_bookmark:
                    await resp.write(_line("BOOKMARK", _bookmark(r, store.rv)))
                    next_bookmark = loop.time() + bookmark_interval
                continue
            if item is None:  # ended by the simulator (a dropped watch): no final bookmark
                await resp.write_eof()
                return resp
            if not isinstance(item, Event):
                await resp.write(_line("ERROR", item))
                break
            out = _translate(item, view, match)
            if out is not None:
                await resp.write(_line(*out))
        if bookmarks and watcher.queue.empty():
            await resp.write(_line("BOOKMARK", _bookmark(r, store.rv)))
        await resp.write_eof()
    except ConnectionError:  # the client went away, or the simulator dropped the connection
        return resp
    finally:
        store.unwatch(watcher)
    return resp


def _bookmark(r: Resource, rv: int) -> Obj:
    return {"kind": r.kind, "apiVersion": r.api_version, "metadata": {"resourceVersion": str(rv)}}
