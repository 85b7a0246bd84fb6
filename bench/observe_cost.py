"""Observation cost: Proxmox API requests and time per cycle, cold and in steady state.

    .venv/bin/python bench/observe_cost.py              # 50, 500 and 5,000 VMs
    .venv/bin/python bench/observe_cost.py 100 1000     # chosen sizes

For each size: a generated cluster (10 hosts per 500 VMs, min 3) served by the simulator over
verified TLS, every other VM owned by a fleet (its tags ``provisiond``, ``pd-bench``), the
others foreign (``FOREIGN_SHARE``); ``ProxmoxObserver.observe()`` through the real proxmoxer
client. The first cycle fills the caches (one ``GET …/pending`` per VM, storage/PCI per host,
mappings). Then:

- *warm*: five cycles with no cache entry due (a re-run of a converged fleet): the two
  cluster-wide lists only, whatever the size;
- *default settings*: the daemon's defaults, a cycle every 60 s (``daemon.interval``), a 300 s
  TTL for owned VMs' configs and the host lists (``daemon.cache_ttl``) and 1,800 s for foreign
  VMs' configs (``daemon.foreign_cache_ttl``), for ``CYCLES`` cycles (one foreign TTL, six TTLs:
  every config's refresh falls in it exactly as often as its TTL says) on the observer's
  injected clock — so the periodic refreshes are included; mean, min and max per cycle.

Requests are counted by the simulator. Results go to docs/performance.md ("Observation") by hand.
"""

from __future__ import annotations

import asyncio
import sys
import time

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.sim.pve.generator import FIRST_VMID, generate
from provisiond.sim.pve.state import Cluster
from provisiond.sim.pve.testing import running_simulator

INTERVAL = 60.0  # daemon.interval default
TTL = 300.0  # daemon.cache_ttl default
FOREIGN_TTL = 1800.0  # daemon.foreign_cache_ttl default
CYCLES = 30  # one foreign TTL


def own_every_other(cluster: Cluster) -> None:
    """As a fleet's adoption leaves them: ``provisiond`` and ``pd-<fleet>`` among the tags."""
    for vmid, vm in cluster.vms.items():
        if vmid >= FIRST_VMID and vmid % 2 == 0:
            vm.config["tags"] = "pd-bench;provisiond"


async def measure(vms: int) -> dict[str, float]:
    topology = generate(hosts=max(3, vms // 50), vms=vms, gpus=0, seed=1)
    now = [0.0]
    with running_simulator(topology, time_scale=0.01) as sim:
        sim.call(own_every_other)
        tokenid, _, secret = sim.token.rpartition("=")
        client = ProxmoxClient(
            ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
        )
        observer = ProxmoxObserver(
            client, cache_ttl=TTL, foreign_cache_ttl=FOREIGN_TTL, clock=lambda: now[0]
        )
        try:
            sim.reset_counts()
            began = time.perf_counter()
            await observer.observe()
            cold_s = time.perf_counter() - began
            cold = sum(sim.request_counts().values())
            sim.reset_counts()
            began = time.perf_counter()
            for _ in range(5):
                await observer.observe()  # the clock stands still: nothing due
            warm_s = (time.perf_counter() - began) / 5
            warm = sum(sim.request_counts().values()) / 5
            per_cycle = []
            for _ in range(CYCLES):
                now[0] += INTERVAL
                sim.reset_counts()
                await observer.observe()
                per_cycle.append(sum(sim.request_counts().values()))
        finally:
            client.close()
    return {
        "cold": cold,
        "cold_s": cold_s,
        "warm": warm,
        "warm_s": warm_s,
        "mean": sum(per_cycle) / len(per_cycle),
        "max": max(per_cycle),
        "min": min(per_cycle),
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [50, 500, 5000]
    print(
        "| VMs | cold cycle: requests / time | warm cycle: requests / time "
        f"| default settings ({INTERVAL:.0f} s, TTL {TTL:.0f} s, foreign {FOREIGN_TTL:.0f} s; "
        "every other VM foreign): requests per cycle, mean (min to max) |"
    )
    print("|---|---|---|---|")
    for n in sizes:
        m = asyncio.run(measure(n))
        print(
            f"| {n:,} | {m['cold']:,.0f} / {m['cold_s']:.2f} s "
            f"| {m['warm']:.0f} / {m['warm_s'] * 1000:.0f} ms "
            f"| {m['mean']:.1f} ({m['min']:.0f} to {m['max']:.0f}) |"
        )


if __name__ == "__main__":
    main()
