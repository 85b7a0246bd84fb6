"""The HTTP surface: aiohttp handlers for discovery, the REST verbs, watch and eviction.

Per request, in order: bearer-token authentication (401 Status ``Unauthorized``; ``/version``
and the health endpoints are public), path parsing (``/api/v1/...``, ``/apis/{g}/{v}/...``,
``namespaces/{ns}/`` for namespaced kinds, ``/watch/`` legacy prefix), the count per (verb,
resource), ``before`` faults, the handler, ``after`` faults, then JSON (``application/json``
regardless of the ``Accept`` header: kubectl accepts a plain list where it asks for a Table,
and client-go a plain APIGroupList where it asks for aggregated discovery). Errors are Status
objects with their ``code`` as the HTTP status (``errors.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from provisiond.sim.kube import errors as e
from provisiond.sim.kube import resources as res
from provisiond.sim.kube import watch
from provisiond.sim.kube.cluster import KubeCluster
from provisiond.sim.kube.errors import KubeError, Obj
from provisiond.sim.kube.resources import POD, Resource
from provisiond.sim.kube.selectors import check_name

PUBLIC = frozenset({"/version", "/healthz", "/livez", "/readyz"})
JSON = "application/json"


def _json(data: Obj, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, separators=(",", ":")), content_type=JSON
    )


def _error(err: KubeError) -> web.Response:
    resp = _json(err.status(), err.code)
    if err.retry_after:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


def _not_found() -> KubeError:
    return KubeError(404, "NotFound", "the server could not find the requested resource", {})


@dataclass(frozen=True, slots=True)
class Target:
    resource: Resource
    namespace: str | None
    name: str
    sub: str
    watch: bool

    @property
    def label(self) -> str:
        """The resource as fault rules and counts name it: ``pods/eviction``, ``leases.<g>``."""
        text = self.resource.plural + (f"/{self.sub}" if self.sub else "")
        return text + (f".{self.resource.group}" if self.resource.group else "")


def parse(path: str) -> Target | Obj | None:
    """A resource target, a discovery document, or None (404)."""
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return {}  # filled in by the caller (needs the server address)
    if parts == ["apis"]:
        return res.group_list()
    if len(parts) == 2 and parts[0] == "apis":
        return res.api_group(parts[1])
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return res.resource_list(group, version)
    legacy_watch = rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    r = res.find(group, version, rest[0])
    if r is None or (namespace is not None and not r.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in (*r.subresources, *(("eviction",) if r is POD else ())):
        return None
    return Target(r, namespace, name, sub, legacy_watch)


def _verb(method: str, t: Target, query: Any) -> str:
    if method == "GET":
        if t.name:
            return "get"
        return "watch" if t.watch or watch.flag(query.get("watch")) else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise e.bad_request(f"json: error decoding request body: {exc}") from exc


def build_app(cluster: KubeCluster, server_address: str) -> web.Application:
    registry = cluster.registry

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            cluster.transports.add(request.transport)
        path = request.path.rstrip("/") or "/"
        try:
            if path not in PUBLIC and not cluster.authorized(request.headers.get("Authorization")):
                raise e.unauthorized()
            return await _serve(request, path)
        except KubeError as err:
            return _error(err)

    async def _serve(request: web.Request, path: str) -> web.StreamResponse:
        if path == "/version":
            return _json(res.VERSION_INFO)
        if path in PUBLIC:
            return web.Response(text="ok")
        found = parse(path)
        if found is None:
            raise _not_found()
        if not isinstance(found, Target):
            if request.method != "GET":
                raise e.method_not_allowed(request.method, path)
            cluster.counts[("get", path)] += 1
            await cluster.faults.apply("before", "get", path)
            return _json(found or res.api_versions(server_address))
        t = found
        verb = _verb(request.method, t, request.query)
        cluster.counts[(verb, t.label)] += 1
        await cluster.faults.apply("before", verb, t.label)
        response = await _handle(request, t, verb)
        await cluster.faults.apply("after", verb, t.label)
        return response

    async def _handle(request: web.Request, t: Target, verb: str) -> web.StreamResponse:
        r, name, sub = t.resource, t.name, t.sub
        ns = t.namespace or ""
        allowed = r.verbs if not sub else ("get", "update", "patch", "create")
        if verb not in allowed:
            raise e.method_not_allowed(verb, r.plural)
        if r.namespaced and t.namespace is None and verb not in ("list", "watch"):
            raise _not_found()
        if verb == "watch":
            return await watch.serve(
                request,
                cluster.store,
                registry,
                r,
                t.namespace,
                bookmark_interval=cluster.options.bookmark_interval,
            )
        if verb == "list":
            q = request.query
            _check_list_rv(q.get("resourceVersion", ""), cluster.store.rv)
            return _json(
                registry.list(
                    r, t.namespace, q.get("labelSelector", ""), q.get("fieldSelector", "")
                )
            )
        if verb == "get":
            check_name(request.query.get("fieldSelector", ""), name)
            return _json(registry.get(r, ns, name))
        if verb == "create" and sub == "eviction":
            return _json(cluster.disruption.evict(ns, name, await _body(request)), 201)
        if verb == "create":
            if name:
                raise e.method_not_allowed("create", r.plural)
            return _json(registry.create(r, ns, await _body(request)), 201)
        if verb == "update":
            return _json(registry.update(r, ns, name, await _body(request), sub))
        if verb == "patch":
            body = await request.read()
            ctype = request.headers.get("Content-Type", "")
            return _json(registry.patch(r, ns, name, ctype, body, sub))
        if verb == "delete":
            options = await _body(request) or {}
            if "gracePeriodSeconds" in request.query:
                options["gracePeriodSeconds"] = int(request.query["gracePeriodSeconds"])
            return _json(registry.delete(r, ns, name, options))
        raise e.method_not_allowed(verb, r.plural)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _check_list_rv(text: str, current: int) -> None:
    if text.isdigit() and int(text) > current:
        raise e.too_large_rv(int(text), current)
