"""The observer's per-host lists (storage, PCI devices) are refreshed once per ``cache_ttl`` on
each host's own phase, like the VM configs: a steady cycle re-reads a few hosts' lists, never
all of them at once (issue 13.9: at 200 hosts, 400 requests in one cycle every TTL)."""

from __future__ import annotations

import math

import pytest

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration

HOSTS = 20
TTL = 100.0
INTERVAL = 20.0  # five cycles per TTL, as with the defaults (60 s, 300 s)
LISTS = ("/nodes/{node}/storage", "/nodes/{node}/hardware/pci")


def _client(sim: SimHandle) -> ProxmoxClient:
    tokenid, _, secret = sim.token.rpartition("=")
    return ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )


async def test_host_lists_come_due_a_few_hosts_per_cycle() -> None:
    now = [0.0]
    topology = generate(hosts=HOSTS, vms=HOSTS, gpus=HOSTS, seed=3)
    with running_simulator(topology, time_scale=0.002) as sim:
        client = _client(sim)
        observer = ProxmoxObserver(client, cache_ttl=TTL, clock=lambda: now[0])
        per_cycle: list[int] = []
        read: list[set[str]] = []
        try:
            await observer.observe()  # cold: every host's two lists
            for cycle in range(1, 11):  # two TTLs
                now[0] = cycle * INTERVAL
                sim.reset_counts()
                observed = await observer.observe()
                assert all(h.storages for h in observed.hosts)  # cached lists still served
                records = [r for t in LISTS for r in sim.request_log("GET", t)]
                per_cycle.append(len(records))
                read.append({r.path.split("/")[2] for r in records})
        finally:
            client.close()
    # Evenly: 2 lists x 20 hosts x 20 s / 100 s = 8 per cycle (before: 0, 0, 0, 0, 40, ...).
    assert all(4 <= n <= 12 for n in per_cycle), per_cycle
    # Never staler than the TTL: within each TTL every host's two lists are read exactly once.
    for ttl in (read[:5], read[5:]):
        hosts = [h for cycle in ttl for h in cycle]
        assert sorted(hosts) == sorted({h.name for h in topology.spec.hosts}), ttl
    assert sum(per_cycle) == 2 * 2 * HOSTS


async def test_an_offline_host_does_not_shift_the_others() -> None:
    """Phases are ranks among all hosts, offline ones included: one going down moves no other
    host's refresh (which could otherwise come later than a TTL after its last read)."""
    now = [0.0]
    topology = generate(hosts=HOSTS, vms=0, seed=3)
    with running_simulator(topology, time_scale=0.002) as sim:
        client = _client(sim)
        observer = ProxmoxObserver(client, cache_ttl=TTL, clock=lambda: now[0])
        try:
            await observer.observe()
            schedule: dict[str, float] = {}
            for cycle in range(1, 6):
                now[0] = cycle * INTERVAL
                if cycle == 2:
                    sim.host_offline("host-001")
                sim.reset_counts()
                await observer.observe()
                for r in sim.request_log("GET", LISTS[0]):
                    schedule[r.path.split("/")[2]] = now[0]
        finally:
            client.close()
    # host-001 is offline (not asked); each other host read once, in the cycle of its rank.
    assert "host-001" not in schedule
    # rank i: due once the clock passes (1 - i / HOSTS) x TTL, seen by the next cycle
    expected = {
        f"host-{i + 1:03d}": INTERVAL * math.ceil((1 - i / HOSTS) * TTL / INTERVAL)
        for i in range(1, HOSTS)
    }
    assert len(schedule) == HOSTS - 1
    assert schedule == expected, schedule
