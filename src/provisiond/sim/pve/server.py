"""The HTTPS server: aiohttp speaking ``/api2/json`` as pveproxy does, and ``SimServer``, which
runs it on its own thread and loop so blocking clients (proxmoxer) can call it in-process.

Per request, in order: route match (501 ``Method '<M> <path>' not implemented``), request count
per (method, endpoint template), authentication by API token or ticket + CSRF token
(``access.py``; 401 after PVE's 3 s delay, scaled by ``time_scale``), parameter merge (query over
body), the endpoint's permission rule (``rules.RULES``; 403), verification against
``params``, the ``before`` hold, the handler, the ``after`` hold, then the response:
``{"data": …}`` or PVE's error envelope with the message's first line as the HTTP reason phrase.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web

from provisiond.core.topology import Topology
from provisiond.sim.pve.access import AuthFailureError
from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.faults import FaultPlan, Injector, run_events
from provisiond.sim.pve.hamanager import HaManager
from provisiond.sim.pve.handlers import Call, Listing
from provisiond.sim.pve.permissions import perm_error
from provisiond.sim.pve.requestlog import RequestLog, RequestRecord
from provisiond.sim.pve.routes import match
from provisiond.sim.pve.rules import ALL, RULES, Rule
from provisiond.sim.pve.state import Cluster
from provisiond.sim.pve.tasks import Hold
from provisiond.sim.pve.validation import validate
from provisiond.sim.tls import TlsServer

log = logging.getLogger("provisiond.sim.pve")

API_PREFIX = "/api2/json"
HEADERS = {"Server": "pve-api-daemon/3.0"}
CONTENT_TYPE = "application/json;charset=UTF-8"


@dataclass
class RequestHold:
    method: str
    template: str
    when: Literal["before", "after"]
    hold: Hold


@dataclass
class Seams:
    """What tests observe and steer: request counts and log, held requests, injected faults.
    Loop-thread owned."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # routed requests
    requests: RequestLog = field(default_factory=RequestLog)
    faults: Injector = field(default_factory=Injector)
    transports: weakref.WeakSet[asyncio.BaseTransport] = field(default_factory=weakref.WeakSet)
    holds: list[RequestHold] = field(default_factory=list)
    log_requests: bool = False

    @property
    def log(self) -> list[RequestRecord]:
        return self.requests.records

    def take(self, method: str, template: str, when: str) -> Hold | None:
        for rh in self.holds:
            if (rh.method, rh.template, rh.when) == (method, template, when):
                self.holds.remove(rh)
                return rh.hold
        return None


def _reply(data: object, total: int | None = None) -> web.Response:
    body: dict[str, object] = {"data": data}
    if total is not None:
        body["total"] = total
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        headers={**HEADERS, "Content-Type": CONTENT_TYPE},
    )


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> web.Response:
    body: dict[str, object] = {"data": None, "message": message}
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status,
        reason=message.split("\n", 1)[0],
        text=json.dumps(body),
        headers={**HEADERS, "Content-Type": CONTENT_TYPE},
    )


async def _auth_delay(cluster: Cluster) -> None:
    """pveproxy answers every 401 after a forced delay (3 s, scaled by ``time_scale``)."""
    await asyncio.sleep(cluster.access.auth_delay * cluster.time_scale)


async def _unauthorized(cluster: Cluster, reason: str) -> web.Response:
    await _auth_delay(cluster)
    return web.Response(status=401, reason=reason, headers=HEADERS)


def _authenticate(cluster: Cluster, request: web.Request, rule: Rule, path: str) -> str:
    """pveproxy's auth handler: the user or token id (``""`` on ``user: world`` endpoints such
    as ``POST /access/ticket``). ``AuthFailureError`` is a 401; an API token on an ``allowtoken=0``
    endpoint is a 403."""
    headers = request.headers
    if rule.user == "world":
        if not rule.allowtoken and cluster.access.token_in(headers.get("Authorization")):
            raise perm_error(f"URI '{path}' not available with API token, need proper ticket.\n")
        return ""
    return cluster.access.authenticate(
        request.method,
        headers.get("Authorization"),
        headers.get("Cookie"),
        headers.get("CSRFPreventionToken"),
    )


async def _params(request: web.Request, path_vars: dict[str, str]) -> dict[str, str]:
    body: dict[str, str] = {}
    if request.method in ("POST", "PUT") and request.can_read_body:
        if request.content_type == "application/json":
            raw = await request.json()
            for k, v in (raw or {}).items():
                if isinstance(v, list):
                    body[k] = "\0".join(str(item) for item in v)
                else:
                    body[k] = str(int(v)) if isinstance(v, bool) else str(v)
        else:  # a repeated key is an array parameter (``map``): its values joined by NUL
            form = await request.post()
            body = {k: "\0".join(str(v) for v in form.getall(k)) for k in form}
    params = {**body, **dict(request.query)}
    for name, value in path_vars.items():
        if name in params and params[name] != value:
            raise PveError(
                "duplicate parameter (already defined in URI) with conflicting values!", status=400
            )
        params[name] = value
    return params


def build_app(cluster: Cluster, seams: Seams) -> web.Application:
    async def dispatch(request: web.Request) -> web.Response:
        began = time.monotonic()
        path = "/" + request.match_info["tail"].rstrip("/")
        record = RequestRecord(request.method, path, path, {})
        seams.requests.arrived(record)
        response = await _dispatch(request, record)  # a cancelled request keeps status 0
        record.duration = time.monotonic() - began
        record.status = response.status
        seams.requests.answered(record)
        if seams.log_requests:
            log.info(
                "%s %s %d %.3fs", record.method, request.path_qs, record.status, record.duration
            )
        return response

    async def _dispatch(request: web.Request, record: RequestRecord) -> web.Response:
        if request.transport is not None:
            seams.transports.add(request.transport)
        path = record.path
        method = request.method
        found = match(method, path, cluster.pve_version)
        if found is None or found.endpoint is None or found.handler is None:
            return _error(501, f"Method '{method} {path}' not implemented")
        record.template = found.template
        seams.counts[(method, found.template)] += 1
        rule = RULES.get((method, found.template), ALL)
        try:
            user = _authenticate(cluster, request, rule, path)
        except AuthFailureError as exc:
            return await _unauthorized(cluster, exc.reason)
        except PveError as exc:
            return _error(exc.status, exc.message, exc.errors)
        record.authid = user
        node = found.path_vars.get("node")
        vmid = found.path_vars.get("vmid")
        try:
            record.params = raw = await _params(request, found.path_vars)
            record.latency += await seams.faults.apply("before", method, found.template, node, vmid)
            cluster.access.for_user(user).authorize(rule, raw)  # before verification, as PVE
            params = validate(found.endpoint, raw)
            hold = seams.take(method, found.template, "before")
            if hold is not None:
                await hold.block()
            data = await found.handler(Call(cluster, params, user))
            record.latency += await seams.faults.apply("after", method, found.template, node, vmid)
        except PveError as exc:
            if exc.status == 401:  # POST /access/ticket's "authentication failure"
                await _auth_delay(cluster)
            return _error(exc.status, exc.message, exc.errors)
        hold = seams.take(method, found.template, "after")
        if hold is not None:
            await hold.block()
        if isinstance(data, Listing):
            return _reply(data.data, data.total)
        return _reply(data)

    app = web.Application()
    app.router.add_route("*", API_PREFIX + "/{tail:.*}", dispatch)
    return app


class SimServer(TlsServer):
    """The simulator on its own thread and event loop.

    ``start()`` returns once the server listens; ``url``, ``ca_path`` and ``token`` then tell a
    client where and how to connect. ``stop()`` cancels running tasks and shuts the loop down.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        log_requests: bool = False,
        state_dir: Path | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        super().__init__(host=host, port=port, state_dir=state_dir, prefix="provisiond-sim-")
        self.topology = topology
        self.time_scale = time_scale
        self.seams = Seams(log_requests=log_requests)
        self.cluster = Cluster(topology, time_scale=time_scale)
        self.fault_plan = faults or FaultPlan()
        self.seams.faults.load(self.fault_plan)
        self.cluster.tasks.fault = self.seams.faults.task_failure
        self._events: asyncio.Task[None] | None = None
        # The CRM's rounds: node maintenance (both versions); on PVE 9.x also rules, failback and
        # auto-rebalance (8.4 has no rules to honour)
        self.ha_manager = HaManager(self.cluster, rules=topology.spec.pve_version != "8.4")
        self._ha_rounds: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def token(self) -> str:
        """The administrator's API token (root@pam, no privilege separation):
        ``user@realm!id=secret``."""
        tokenid = self.cluster.access.admin_tokenid
        return f"{tokenid}={self.cluster.tokens[tokenid]}"

    def start(self) -> None:
        ctx = self._tls_context()
        assert self.cert_files is not None
        self.cluster.ssl_fingerprint = self.cert_files.fingerprint
        self._thread = threading.Thread(target=self._run, args=(ctx,), name="pve-sim", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self, ctx: ssl.SSLContext) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve(ctx))
        except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _serve(self, ctx: ssl.SSLContext) -> None:
        await self._listen(build_app(self.cluster, self.seams), ctx)
        if self.fault_plan.events:
            self._events = asyncio.get_running_loop().create_task(
                run_events(self.cluster, self.seams.faults, self.fault_plan.events)
            )
        self._ha_rounds = asyncio.get_running_loop().create_task(self.ha_manager.run())
        self._ready.set()

    async def _shutdown(self) -> None:
        if self._ha_rounds is not None:
            self._ha_rounds.cancel()
            await asyncio.gather(self._ha_rounds, return_exceptions=True)
        if self._events is not None:
            self._events.cancel()
            await asyncio.gather(self._events, return_exceptions=True)
        self.seams.faults.release_hangs()
        await self.cluster.tasks.cancel_all()
        await self._close(self.seams.transports)

    def stop(self) -> None:
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            future.result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        self._thread = None
        if self.seams.log_requests:
            log.info("%s", self.seams.requests.summary())
        self._remove_state_dir()
