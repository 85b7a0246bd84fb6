"""The cost of metrics: steady reconcile cycles with and without telemetry and the exporter, and
the size and time of a scrape.

    .venv/bin/python bench/metrics_cost.py               # 5,000 VMs on 100 hosts, 200 GPUs
    .venv/bin/python bench/metrics_cost.py 1000 20 40    # VMs, hosts, GPUs

A generated cluster (``sim/pve/generator.py``, seed 1) served by the simulator over verified TLS.
Two daemons reconcile it in read-only mode (observe, plan, report — the steady state of a
converged fleet, which is what runs every ``daemon.interval``): *bare*, the runtime pieces with
no listener and no request hook; *wired*, ``app.build_daemon`` as ``provisiond run`` builds it —
``Telemetry`` on the executor, the reconciler and every Proxmox request, the fleet gauges
recomputed from each observation, the HTTP endpoint started. The fleet spec is 20 VMs cloned
from the generated template (so each plan has work to report); the 5,000 generated VMs are
observed and enter the GPU and allocation gauges. After one cold cycle each (caches filled),
``CYCLES`` steady cycles alternate between the two; medians are reported. Then ``SCRAPES``
scrapes of ``/metrics`` (plain and gzip). Results go to docs/performance.md ("Metrics") by hand.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from provisiond import app
from provisiond.adapters.proxmox import ProxmoxClient
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.adapters.specsource import SpecFiles
from provisiond.logging import configure_logging
from provisiond.runtime.executor import Executor
from provisiond.runtime.reconciler import Reconciler
from provisiond.settings import Settings
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

CYCLES = 25
SCRAPES = 30


def fleet(directory: Path) -> Path:
    spec = {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "bench"},
        "spec": {
            "defaults": {"template": "tmpl", "storage": "shared-nfs", "bridge": "vmbr0"},
            "pools": [
                {
                    "name": "web",
                    "cores": 2,
                    "memory": "4GiB",
                    "disks": [{"slot": "scsi0", "size": "32GiB"}],
                    "vms": [{"name": f"bench-{i:02d}", "vmid": 900000 + i} for i in range(20)],
                }
            ],
        },
    }
    path = directory / "fleet.yaml"
    path.write_text(json.dumps(spec))
    return path


def settings(sim: SimHandle, spec: Path) -> Settings:
    tokenid, _, secret = sim.token.rpartition("=")
    return Settings(
        proxmox={
            "url": sim.url,
            "token_id": tokenid,
            "token_secret": secret,
            "ca_bundle": sim.ca_path,
        },  # type: ignore[arg-type]
        spec={"paths": [spec]},  # type: ignore[arg-type]
        daemon={  # type: ignore[arg-type]
            "read_only": True,
            "cache_ttl": 3600,
            "foreign_cache_ttl": 3600,
        },
        metrics={"bind": "127.0.0.1:0"},  # type: ignore[arg-type]
    )


def bare(s: Settings) -> tuple[ProxmoxClient, Reconciler]:
    """The runtime without telemetry: no listener, no request hook."""
    conn = app.proxmox_connection(s)
    client = ProxmoxClient(conn)
    observer = ProxmoxObserver(
        client, cache_ttl=s.daemon.cache_ttl, foreign_cache_ttl=s.daemon.foreign_cache_ttl
    )
    executor = Executor(observer, ProxmoxActions(client, invalidate=observer.invalidate))
    reconciler = Reconciler(
        SpecFiles(s.spec.paths), observer, executor, app.planner(), read_only=True
    )
    return client, reconciler


async def cycle_seconds(reconciler: Reconciler) -> float:
    began = time.perf_counter()
    result = await reconciler.cycle()
    assert result.error is None, result.error
    return time.perf_counter() - began


async def scrape(url: str, *, gzip: bool) -> tuple[float, int]:
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    times, size = [], 0
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for _ in range(SCRAPES):
            began = time.perf_counter()
            async with http.get(url, headers=headers) as r:
                body = await r.read()
            times.append(time.perf_counter() - began)
            size = len(body)
    return statistics.median(times), size


async def measure(sim: SimHandle, spec: Path) -> None:
    s = settings(sim, spec)
    client, plain = bare(s)
    wired = app.build_daemon(s)
    assert wired.server is not None
    await wired.server.start()
    try:
        cold_bare = await cycle_seconds(plain)
        cold_wired = await cycle_seconds(wired.reconciler)
        times: dict[str, list[float]] = {"bare": [], "wired": []}
        for i in range(CYCLES):  # alternate who goes first: the machine's load drifts
            order = [("bare", plain), ("wired", wired.reconciler)]
            for name, reconciler in order if i % 2 == 0 else order[::-1]:
                times[name].append(await cycle_seconds(reconciler))
        b, w = statistics.median(times["bare"]), statistics.median(times["wired"])
        last = wired.reconciler.last
        assert last is not None
        hook = []  # what telemetry adds to a cycle, timed alone: the listener on the last result
        for _ in range(CYCLES):
            began = time.perf_counter()
            wired.telemetry.cycle_finished(last)
            hook.append(time.perf_counter() - began)
        print(f"cold cycle: bare {cold_bare:.2f} s, wired {cold_wired:.2f} s")
        print(
            f"steady cycle (median of {CYCLES}): bare {b * 1000:.0f} ms, wired {w * 1000:.0f} ms,"
            f" difference {(w - b) * 1000:+.0f} ms ({(w - b) / b * 100:+.1f} %)"
        )
        print(
            f"telemetry per cycle (median of {CYCLES}, fleet gauges included): "
            f"{statistics.median(hook) * 1000:.1f} ms"
        )
        url = f"http://127.0.0.1:{wired.server.port}/metrics"
        seconds, size = await scrape(url, gzip=False)
        zipped_s, zipped = await scrape(url, gzip=True)
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            text = await r.text()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(
            f"scrape (median of {SCRAPES}): {size:,} bytes, {series} series, "
            f"{seconds * 1000:.1f} ms; gzip {zipped:,} bytes, {zipped_s * 1000:.1f} ms"
        )
    finally:
        await wired.server.stop()
        wired.close()
        client.close()


def main() -> None:
    vms, hosts, gpus = (
        int(a) for a in (sys.argv[1:] + ["5000", "100", "200"][len(sys.argv) - 1 :])
    )
    configure_logging(fmt="console", level="warning")  # a log line per cycle is not measured
    topology = generate(hosts=hosts, vms=vms, gpus=gpus, seed=1)
    print(f"{vms:,} VMs on {hosts} hosts, {gpus} GPUs")
    with tempfile.TemporaryDirectory() as tmp, running_simulator(topology, time_scale=0.01) as sim:
        asyncio.run(measure(sim, fleet(Path(tmp))))


if __name__ == "__main__":
    main()
