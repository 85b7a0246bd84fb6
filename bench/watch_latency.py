"""Watch reaction latency: a hand-made removal of a managed node label → restored by provisiond.

Both simulators run in this process, linked (cps-gpu: the Proxmox VMs join the Kubernetes
simulator as Nodes); the daemon (reconciler, spec watcher, node watch) runs in this loop with
``daemon.interval`` 600 s, so only the node watch can bring a cycle in time. After convergence,
each trial removes the ``scratch`` label of one GPU worker with the real ``kubernetes.aio``
client (as ``kubectl label node k3s-wk-gpuN scratch-`` would) and times until the label is
back, observed through the same client's own watch. Reported: p50, p90, p99, max over the
trials (default 50), and the reconcile cycles they took.

    .venv/bin/python bench/watch_latency.py [--trials 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog
from kubernetes.aio import client, watch

from provisiond import app
from provisiond.adapters.specsource import SpecFiles
from provisiond.cli import sandbox
from provisiond.runtime.reconciler import CycleResult
from provisiond.sim.kube import Membership, start_linked
from provisiond.sim.kube.testing import aio_api_client
from provisiond.sim.pve.testing import running_simulator

WORKERS = ("k3s-wk-gpu1", "k3s-wk-gpu2", "k3s-wk-gpu3", "k3s-wk-gpu4")


class _Converged:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.cycles = 0

    def cycle_finished(self, result: CycleResult) -> None:
        self.cycles += 1
        if result.converged:
            self.event.set()


async def _until_label(core: client.CoreV1Api, name: str, rv: str) -> None:
    """Watch ``name`` from ``rv`` until its ``scratch`` label is back."""
    async with watch.Watch() as w:
        async for event in w.stream(
            core.list_node,
            field_selector=f"metadata.name={name}",
            resource_version=rv,
            timeout_seconds=60,
        ):
            node = event["object"]
            if "scratch" in (node.metadata.labels or {}):
                return
    raise TimeoutError(f"{name}: label not restored within 60 s")


async def _trials(settings: object, kube: object, n: int, listener: _Converged) -> list[float]:
    built = app.build_daemon(settings, cycle_listener=listener, debounce=0.0)  # type: ignore[arg-type]
    mgr = app.manager(built)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(listener.event.wait(), 120)
        out: list[float] = []
        async with aio_api_client(kube) as api:
            core = client.CoreV1Api(api)
            for i in range(n):
                name = WORKERS[i % len(WORKERS)]
                started = time.perf_counter()
                node = await core.patch_node(name, {"metadata": {"labels": {"scratch": None}}})
                await _until_label(core, name, node.metadata.resource_version)
                out.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)
        return out
    finally:
        mgr.stop.set()
        await asyncio.wait_for(task, 30)
        built.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    folder = sandbox.examples_dir() / "cps-gpu"
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_simulator("cps-gpu", time_scale=0.005) as pve,
    ):
        membership = Membership.from_desired(SpecFiles([folder]).load())
        kube = start_linked(pve, membership=membership, node_delay=0.1, ready_delay=0.1)
        try:
            endpoint = sandbox.Endpoint(
                url=pve.url,
                ca=pve.ca_path,
                token=pve.token,
                kubeconfig=kube.write_kubeconfig(Path(tmp) / "kubeconfig"),
            )
            settings = sandbox.settings_for(endpoint, [folder], time_scale=0.005, interval=600.0)
            listener = _Converged()
            seconds = asyncio.run(_trials(settings, kube, args.trials, listener))
        finally:
            kube.stop()
    q = statistics.quantiles(seconds, n=100, method="inclusive")
    result = {
        "trials": len(seconds),
        "p50_ms": round(q[49] * 1000, 1),
        "p90_ms": round(q[89] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "cycles": listener.cycles,
        "interval_s": 600.0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>10}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
