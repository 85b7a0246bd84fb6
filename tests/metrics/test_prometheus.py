"""A real Prometheus scraping the daemon (in-process, its real pieces) while it converges cps-gpu
on the Proxmox simulator; and the daemon's endpoints never showing the token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_server import running_prometheus

from provisiond import app as assembly
from provisiond.adapters.health import Health
from provisiond.adapters.httpserver import MetricsServer
from provisiond.cli.sandbox import executor_settings
from provisiond.settings import Settings
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

pytestmark = pytest.mark.e2e

TIME_SCALE = 0.01


def settings(sim: SimHandle, secret: str | None = None) -> Settings:
    tokenid, _, real = sim.token.rpartition("=")
    return Settings(
        proxmox={
            "url": sim.url,
            "token_id": tokenid,
            "token_secret": secret or real,
            "ca_bundle": sim.ca_path,
        },  # type: ignore[arg-type]
        spec={"paths": [EXAMPLES / "cps-gpu"]},  # type: ignore[arg-type]
        executor=executor_settings(TIME_SCALE),  # type: ignore[arg-type]
        metrics={"bind": "127.0.0.1:0"},  # type: ignore[arg-type]
    )


@dataclass
class Running:
    built: assembly.Daemon
    server: MetricsServer
    health: Health

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def bodies(self) -> str:
        out = []
        async with aiohttp.ClientSession() as http:
            for path, accept in (
                ("/metrics", "text/plain"),
                ("/metrics", "application/openmetrics-text"),
                ("/healthz", ""),
                ("/readyz", ""),
            ):
                async with http.get(self.base + path, headers={"Accept": accept}) as r:
                    out.append(f"{r.status} {dict(r.headers)} {await r.text()}")
        # one entry per endpoint, in order; /readyz last
        return "\n".join(out)


@asynccontextmanager
async def daemon(s: Settings) -> AsyncIterator[Running]:
    """The daemon as ``app`` wires it (telemetry, health, the endpoint), the endpoint started."""
    built = assembly.build_daemon(s, follow_up=0.05)
    assert built.server is not None
    await built.server.start()
    try:
        yield Running(built, built.server, built.health)
    finally:
        await built.server.stop()
        built.close()


async def test_prometheus_sees_cps_gpu_converge_and_no_alert_fires(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        secret = sim.token.rpartition("=")[2]
        async with daemon(settings(sim)) as d:
            stop = asyncio.Event()
            loop = asyncio.create_task(d.built.reconciler.run(stop))
            try:
                with running_prometheus(tmp_path / "prom", [f"127.0.0.1:{d.server.port}"]) as prom:
                    deadline = time.monotonic() + 90
                    while not (d.built.reconciler.last and d.built.reconciler.last.converged):
                        assert time.monotonic() < deadline, d.built.reconciler.last
                        await asyncio.sleep(0.2)
                    q = prom.wait_for  # blocking HTTP: run it off the loop the daemon uses

                    async def wait(expr: str, pred: object) -> float | None:
                        return await asyncio.to_thread(q, expr, pred)

                    await wait("up", lambda v: v == 1)
                    await wait("sum(provisiond_drift_objects)", lambda v: v == 0)
                    claimed = 'provisiond_gpu_devices{host="cit-gpu-01",state="claimed"}'
                    assert await wait(claimed, lambda v: v == 8) == 8
                    free = 'provisiond_gpu_devices{host="cit-gpu-01",state="free"}'
                    assert await wait(free, lambda v: v is not None) == 0
                    rose = "sum(provisiond_reconcile_total)"
                    assert (await wait(rose, lambda v: v is not None and v >= 2) or 0) >= 2
                    clones = 'sum(provisiond_actions_total{action="clone",result="succeeded"})'
                    assert await wait(clones, lambda v: v is not None) == 8
                    assert await wait(
                        'sum(provisiond_proxmox_requests_total{endpoint="/cluster/resources"})',
                        lambda v: v is not None and v > 0,
                    )
                    # converged: the "no success" alert has its timestamp; nothing fires
                    await wait(
                        "provisiond_last_successful_reconcile_timestamp_seconds",
                        lambda v: v is not None and v > 0,
                    )
                    await asyncio.sleep(3)  # a few rule evaluations after convergence
                    groups = (await asyncio.to_thread(prom.api, "rules"))["groups"]
                    evaluated = [r for g in groups for r in g["rules"] if r["health"] == "ok"]
                    assert len(evaluated) == 11  # the rules were loaded and evaluate cleanly
                    firing = await asyncio.to_thread(prom.query, 'ALERTS{alertstate="firing"}')
                    assert firing == []
                    pending = await asyncio.to_thread(prom.query, "ALERTS")
                    assert pending == [], pending
                    assert secret not in await d.bodies()
            finally:
                stop.set()
                await asyncio.wait_for(loop, 30)


async def test_a_rejected_token_is_not_ready_and_never_shown(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        wrong = "0badc0de-aaaa-bbbb-cccc-0123456789ab"
        async with daemon(settings(sim, secret=wrong)) as d:
            result = await d.built.reconciler.cycle()
            assert result.observed is not None
            assert result.observed.unobserved.lists  # the token was refused
            text = await d.bodies()
            assert "\n503 " in text  # /readyz (/healthz is 200: the loop is alive)
            assert text.endswith("Proxmox unreachable or the token rejected (see the logs)\n")
            assert wrong not in text
            assert sim.token.rpartition("=")[2] not in text
            assert 'code="401"' in text
