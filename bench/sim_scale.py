"""Simulator scale benchmark: a generated 10,000-VM cluster served over HTTPS.

    .venv/bin/python bench/sim_scale.py                 # 10,000 VMs on 50 hosts, 200 GPUs
    .venv/bin/python bench/sim_scale.py 20000 100 400   # VMs, hosts, GPUs

Measures (wall clock, this machine): generating and validating the topology, starting the
simulator, ``GET /cluster/resources`` (everything, and ``type=vm``) through proxmoxer over
verified TLS (median of 5, client-side, JSON decoding included), the same call's server-side
handler time, and ``SimHandle.snapshot()``. Results go to docs/performance.md ("Simulator") by
hand.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.handlers import Call, cluster
from provisiond.sim.pve.testing import proxmox_client, running_simulator


def timed(fn: object, runs: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def main() -> None:
    vms, hosts, gpus = (
        int(a) for a in (sys.argv[1:] + ["10000", "50", "200"][len(sys.argv) - 1 :])
    )
    began = time.perf_counter()
    topology = generate(hosts=hosts, vms=vms, gpus=gpus, seed=1)
    seconds = time.perf_counter() - began
    print(f"generate + validate {vms} VMs / {hosts} hosts / {gpus} GPUs: {seconds:.2f} s")
    began = time.perf_counter()
    with running_simulator(topology, time_scale=0.01) as sim:
        print(f"simulator start: {time.perf_counter() - began:.2f} s")
        api = proxmox_client(sim, timeout=60)
        seconds, items = timed(api.cluster.resources.get)
        print(f"GET /cluster/resources ({len(items)} items): {seconds * 1000:.0f} ms")  # type: ignore[arg-type]
        seconds, items = timed(lambda: api.cluster.resources.get(type="vm"))
        print(f"GET /cluster/resources?type=vm ({len(items)} items): {seconds * 1000:.0f} ms")  # type: ignore[arg-type]

        async def handler() -> object:
            return await cluster.resources(Call(sim.server.cluster, {}, "root@pam"))

        def server_side() -> object:
            return asyncio.run_coroutine_threadsafe(handler(), sim.server.loop).result()

        seconds, _ = timed(server_side)
        print(f"  of which the handler: {seconds * 1000:.0f} ms")
        began = time.perf_counter()
        snap = sim.snapshot()
        print(f"snapshot ({len(snap.spec.vms)} VMs): {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
