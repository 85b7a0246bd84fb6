"""The daemon's HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz`` (DESIGN §9).

Built on aiohttp, inside the daemon's event loop, as one more Manager runnable
(``async run(stop)``). Why not prometheus_client's own server (a thread): the loop is what
must be alive — a server in the loop stops answering when the loop is wedged, which is exactly
what a liveness probe should see — and aiohttp is already a dependency (the simulator), gives
content negotiation, gzip and a clean start/stop that reports the bound port (port 0 in tests).
Generating the exposition on the loop is fine: every label is bounded (no VMIDs), so a scrape of
a 5,000-VM fleet is a few hundred series (bench/ records its size and time).

- ``/metrics``: Prometheus text format, or OpenMetrics when the ``Accept`` header asks for it
  (prometheus_client's ``choose_encoder``); gzip when accepted;
- ``/healthz``: 200 while the reconcile loop is live, 503 after two missed cycles;
- ``/readyz``: 200 once the first observation succeeded (Proxmox reachable and the token
  accepted), 503 before and while Proxmox fails; a standby is ready too.
Bodies are one fixed line (``ok`` or a reason from ``Health``): never error texts or secrets.

The bind address is ``metrics.bind`` (``HOST:PORT``, ``PROVISIOND_METRICS__BIND``), default port
19339: the Prometheus wiki's default port allocations fill 9100-9999 completely (since 2023) and
ask internal applications to stay outside that range; 19339 is above it and the wiki's overflow
past 10000, below the Kubernetes NodePort (30000-32767) and Linux ephemeral (32768-60999)
ranges, and not an IANA service port (/etc/services). docs/metrics.md records the choice.
"""

from __future__ import annotations

import asyncio
import ipaddress

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, ConfigDict, field_validator

from provisiond.adapters.health import Health

DEFAULT_PORT = 19339

log = structlog.get_logger("provisiond.metrics")


def split_bind(bind: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (IPv6 as ``[::1]:PORT``) -> (host, port); ``ValueError`` when malformed."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"bind address {bind!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"bind address {bind!r}: port out of range")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # raises ValueError
    elif ":" in host:
        raise ValueError(f"bind address {bind!r}: write an IPv6 host in brackets, [::1]:PORT")
    return host, port


class MetricsSettings(BaseModel):
    """Settings section ``metrics:`` (add to ``Settings`` as ``metrics: MetricsSettings``)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    bind: str = f"0.0.0.0:{DEFAULT_PORT}"

    @field_validator("bind")
    @classmethod
    def _valid_bind(cls, value: str) -> str:
        split_bind(value)
        return value


class MetricsServer:
    name = "metrics-server"

    def __init__(self, registry: CollectorRegistry, health: Health, *, bind: str) -> None:
        self._registry = registry
        self._health = health
        self._host, self._port = split_bind(bind)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port, once started

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(
            body=encoder(self._registry), headers={"Content-Type": content_type}
        )
        response.enable_compression()
        return response

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok, why = self._health.live()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        ok, why = self._health.ready()
        return web.Response(status=200 if ok else 503, text=why + "\n")

    async def start(self) -> None:
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("metrics_serving", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
