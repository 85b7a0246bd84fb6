"""The HTTP endpoint on a free port: exposition checked by promtool, health and readiness."""

from __future__ import annotations

import asyncio
import gzip
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from metrics_support import PROMTOOL, populated, series_names
from provisiond.adapters.health import Health
from provisiond.adapters.httpserver import DEFAULT_PORT, MetricsServer, MetricsSettings, split_bind
from provisiond.adapters.metrics import Metrics

pytestmark = pytest.mark.integration

INTERVAL = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    metrics: Metrics
    health: Health
    clock: Clock
    http: aiohttp.ClientSession

    async def get(self, path: str, raw: bool = False, **headers: str) -> tuple[int, str, bytes]:
        async with self.http.get(self.url + path, headers=headers, auto_decompress=not raw) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    clock = Clock()
    metrics = populated()
    health = Health(interval=lambda: INTERVAL, clock=clock)
    server = MetricsServer(metrics.registry, health, bind="127.0.0.1:0")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(f"http://127.0.0.1:{server.port}", metrics, health, clock, http)
    finally:
        await server.stop()


async def test_metrics_in_text_format_pass_promtool_check_metrics(served: Served) -> None:
    status, ctype, body = await served.get("/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    text = body.decode()
    assert 'provisiond_gpu_devices{host="gpu-01",mapping="a100-40g",state="free"} 8.0' in text
    assert "provisiond_reconcile_duration_seconds_bucket" in text
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    out, _ = await proc.communicate(body)
    assert proc.returncode == 0, out.decode()


async def test_openmetrics_when_the_accept_header_asks(served: Served) -> None:
    status, ctype, body = await served.get(
        "/metrics", Accept="application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
    )
    assert status == 200
    assert ctype.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b'provisiond_reconcile_total{result="success"} 1.0' in body


async def test_gzip_when_accepted(served: Served) -> None:
    _, _, plain = await served.get("/metrics", **{"Accept-Encoding": "identity"})
    status, _, body = await served.get("/metrics", raw=True, **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert series_names(gzip.decompress(body).decode()) == series_names(plain.decode())


async def test_healthz_fails_after_two_missed_cycles_and_recovers_on_activity(
    served: Served,
) -> None:
    assert (await served.get("/healthz"))[0] == 200
    served.clock.now += 2 * INTERVAL + 9  # within two intervals plus the grace (10 s)
    assert (await served.get("/healthz"))[0] == 200
    served.clock.now += 2  # past it: the loop is wedged
    status, _, body = await served.get("/healthz")
    assert status == 503
    assert b"no reconcile activity for 71s" in body
    served.health.beat()
    assert (await served.get("/healthz"))[0] == 200


async def test_readyz_waits_for_an_observation_that_reached_proxmox(served: Served) -> None:
    status, _, body = await served.get("/readyz")
    assert (status, body) == (503, b"first observation not done yet\n")
    served.health.observation(proxmox_ok=False)
    status, _, body = await served.get("/readyz")
    assert status == 503
    assert b"Proxmox unreachable" in body
    served.health.observation(proxmox_ok=True)
    assert (await served.get("/readyz"))[:1] == (200,)
    served.health.observation(proxmox_ok=False)  # the token was revoked later
    assert (await served.get("/readyz"))[0] == 503


async def test_an_unknown_path_is_404(served: Served) -> None:
    assert (await served.get("/"))[0] == 404


async def test_run_serves_until_stop_and_then_frees_the_port() -> None:
    health = Health(interval=lambda: INTERVAL)
    server = MetricsServer(populated().registry, health, bind="127.0.0.1:0")
    stop = asyncio.Event()
    task = asyncio.create_task(server.run(stop))
    for _ in range(100):
        if server.port is not None:
            break
        await asyncio.sleep(0.01)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/healthz") as r,
    ):
        assert r.status == 200
    stop.set()
    await asyncio.wait_for(task, 5)
    again = MetricsServer(populated().registry, health, bind=f"127.0.0.1:{server.port}")
    await again.start()  # the port was released
    await again.stop()


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("0.0.0.0:19339", ("0.0.0.0", 19339)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9999", ("::1", 9999)),
        ("localhost:8080", ("localhost", 8080)),
    ],
)
def test_bind_addresses(bind: str, expected: tuple[str, int]) -> None:
    assert split_bind(bind) == expected


@pytest.mark.parametrize("bind", ["19339", ":19339", "host:", "host:99999", "::1:80", "[zz]:80"])
def test_bad_bind_addresses_are_refused(bind: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic wraps it; the message is ours
        MetricsSettings(bind=bind)


def test_the_default_bind_is_the_documented_port() -> None:
    assert MetricsSettings().bind == f"0.0.0.0:{DEFAULT_PORT}"
    assert DEFAULT_PORT == 19339
