"""Observation cost: Proxmox API requests and time per cycle, cold and in steady state.

    .venv/bin/python bench/observe_cost.py              # 50, 500 and 5,000 VMs
    .venv/bin/python bench/observe_cost.py 100 1000     # chosen sizes

For each size: a generated cluster (10 hosts per 500 VMs, min 3) served by the simulator over
verified TLS; ``ProxmoxObserver.observe()`` through the real proxmoxer client. The first cycle
fills the caches (one ``GET …/pending`` per VM, storage/PCI per host, mappings); the next ones
must cost the two cluster-wide lists only, whatever the size. Requests are counted by the
simulator. Results go to docs/performance.md ("Observation") by hand.
"""

from __future__ import annotations

import asyncio
import sys
import time

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.testing import running_simulator


async def measure(vms: int) -> tuple[int, float, int, float]:
    topology = generate(hosts=max(3, vms // 50), vms=vms, gpus=0, seed=1)
    with running_simulator(topology, time_scale=0.01) as sim:
        tokenid, _, secret = sim.token.rpartition("=")
        client = ProxmoxClient(
            ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
        )
        observer = ProxmoxObserver(client, cache_ttl=3600)
        try:
            sim.reset_counts()
            began = time.perf_counter()
            await observer.observe()
            cold_s = time.perf_counter() - began
            cold = sum(sim.request_counts().values())
            sim.reset_counts()
            began = time.perf_counter()
            for _ in range(5):
                await observer.observe()
            warm_s = (time.perf_counter() - began) / 5
            warm = sum(sim.request_counts().values()) // 5
        finally:
            client.close()
    return cold, cold_s, warm, warm_s


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [50, 500, 5000]
    print("| VMs | cold cycle: requests / time | steady cycle: requests / time |")
    print("|---|---|---|")
    for n in sizes:
        cold, cold_s, warm, warm_s = asyncio.run(measure(n))
        print(f"| {n:,} | {cold:,} / {cold_s:.2f} s | {warm} / {warm_s * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
