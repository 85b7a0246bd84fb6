"""Foreign VMs' configs (no fleet owns them) are refreshed once per ``foreign_cache_ttl``, owned
ones once per ``cache_ttl``, each on its own phase; every immediate re-read stays for both — a
changed ``/cluster/resources`` entry (a start by hand), a restart between two cycles (``uptime``
went down while the status stayed ``running``).

Real proxmoxer against the simulator; the observer's clock is injected (as in
``test_pve_host_list_phasing.py``), so a cycle is a step of that clock, not a wait."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.adapters.pve_vmconfigs import vm_phase
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration

TTL = 100.0
FOREIGN_TTL = 600.0  # six TTLs, as with the defaults (300 s, 1,800 s)
INTERVAL = 20.0  # five cycles per TTL, as with the defaults (60 s, 300 s)
CONFIG = "/nodes/{node}/qemu/{vmid}/pending"
VMS = 60


def _client(sim: SimHandle) -> ProxmoxClient:
    tokenid, _, secret = sim.token.rpartition("=")
    return ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )


def _observer(client: ProxmoxClient, now: list[float]) -> ProxmoxObserver:
    return ProxmoxObserver(
        client, cache_ttl=TTL, foreign_cache_ttl=FOREIGN_TTL, clock=lambda: now[0]
    )


def _running(sim: SimHandle, vmid: int) -> bool:
    vm = sim.vm(vmid)
    assert vm is not None
    return vm.running


def _early(vmids: list[int]) -> list[int]:
    """VMs whose phase (``vm_phase``) is below 0.4: none of them comes due in the first three
    cycles (owned: at 100 - 100 x phase > 60 s; foreign: at 600 - 600 x phase > 360 s), so any
    read then is an immediate one."""
    return [v for v in vmids if vm_phase(v) < 0.4]


def _reads(sim: SimHandle) -> Counter[int]:
    return Counter(int(r.path.split("/")[4]) for r in sim.request_log("GET", CONFIG))


def _own(sim: SimHandle, vmids: list[int]) -> None:
    """Every third VM owned by its tags, every third by the clone's description marker alone
    (cloned, tags not yet written), the rest foreign."""
    for i, vmid in enumerate(vmids):
        if i % 3 == 0:
            sim.set_config(vmid, tags="pd-f;provisiond")
        elif i % 3 == 1:
            sim.set_config(vmid, description=f"provisiond:f/vm-{vmid}")


async def test_owned_configs_once_per_ttl_foreign_once_per_foreign_ttl() -> None:
    now = [0.0]
    topology = generate(hosts=3, vms=VMS, seed=5)
    with running_simulator(topology, time_scale=0.002) as sim:
        vmids = [v for v in sim.vmids() if v >= 1000]
        _own(sim, vmids)
        owned = {v for i, v in enumerate(vmids) if i % 3 != 2}
        foreign = set(vmids) - owned
        client = _client(sim)
        observer = _observer(client, now)
        per_cycle: list[Counter[int]] = []
        try:
            await observer.observe()  # cold: every config
            for cycle in range(1, int(FOREIGN_TTL / INTERVAL) + 1):  # one foreign TTL
                now[0] = cycle * INTERVAL
                sim.reset_counts()
                observed = await observer.observe()
                assert all(v.config is not None for v in observed.vms)  # cached ones served
                per_cycle.append(_reads(sim))
        finally:
            client.close()
    per_ttl = int(TTL / INTERVAL)
    windows = [sum(per_cycle[i : i + per_ttl], Counter()) for i in range(0, 30, per_ttl)]
    # Owned (tags or marker) and the template: exactly once in every TTL.
    for window in windows:
        assert all(window[v] == 1 for v in owned | {100}), window
    # Foreign: not once per TTL, but exactly once in the foreign TTL, each on its phase.
    whole = sum(per_cycle, Counter())
    assert {v: whole[v] for v in foreign} == dict.fromkeys(foreign, 1), whole
    first_two_ttls = windows[0] + windows[1]
    assert sum(first_two_ttls[v] for v in foreign) < len(foreign) / 2, first_two_ttls
    # Evenly: 41 owned x 20 / 100 + 20 foreign x 20 / 600 ≈ 8.9 reads per cycle, every cycle.
    assert all(6 <= sum(c.values()) <= 12 for c in per_cycle), per_cycle


async def test_a_foreign_vm_started_by_hand_is_read_again_in_the_next_cycle() -> None:
    """A GPU given by hand to a stopped foreign VM is not seen until its next refresh — unless
    the VM starts (the only way it can take the device), which changes its status."""
    now = [0.0]
    topology = generate(hosts=3, vms=VMS, gpus=3, seed=5)
    with running_simulator(topology, time_scale=0.002) as sim:
        vmid = _early([v for v in sim.vmids() if v >= 1000 and not _running(sim, v)])[0]
        client = _client(sim)
        observer = _observer(client, now)
        try:
            await observer.observe()
            sim.set_config(vmid, hostpci0="mapping=gpu,pcie=1", machine="q35")
            for cycle in (1, 2):
                now[0] = cycle * INTERVAL
                sim.reset_counts()
                vm = next(v for v in (await observer.observe()).vms if v.vmid == vmid)
                assert _reads(sim)[vmid] == 0  # not due, its resource entry unchanged
                assert vm.gpu_claims() == {}
            sim.set_power(vmid, "running")
            now[0] = 3 * INTERVAL
            sim.reset_counts()
            vm = next(v for v in (await observer.observe()).vms if v.vmid == vmid)
            reads = _reads(sim)
        finally:
            client.close()
    assert reads[vmid] == 1
    assert vm.gpu_claims() == {"gpu": 1}


async def test_a_vm_restarted_between_two_cycles_is_read_again() -> None:
    """``qm reboot`` (shutdown and start: pending changes, hostpci among them, are applied) can
    fall between two cycles: the status is ``running`` at both, the uptime went down."""
    now = [0.0]
    topology = generate(hosts=3, vms=VMS, gpus=3, seed=5)
    with running_simulator(topology, time_scale=0.002) as sim:
        foreign, owned = _early([v for v in sim.vmids() if v >= 1000 and _running(sim, v)])[:2]
        sim.set_config(owned, tags="pd-f;provisiond")

        def up_since(vmids: list[int], at: float) -> None:
            sim.call(lambda c: [setattr(c.vms[v], "started_at", at) for v in vmids])

        up_since([foreign, owned], time.time() - 3600)
        client = _client(sim)
        observer = _observer(client, now)
        try:
            await observer.observe()
            now[0] = INTERVAL
            sim.reset_counts()
            await observer.observe()
            assert _reads(sim)[foreign] == 0  # up for an hour, not due
            sim.set_config(foreign, hostpci0="mapping=gpu,pcie=1", machine="q35")
            up_since([foreign, owned], time.time())  # both restarted
            now[0] = 2 * INTERVAL
            sim.reset_counts()
            vm = next(v for v in (await observer.observe()).vms if v.vmid == foreign)
            reads = _reads(sim)
            now[0] = 3 * INTERVAL
            sim.reset_counts()
            await observer.observe()
            again = _reads(sim)
        finally:
            client.close()
    assert reads[foreign] == 1
    assert reads[owned] == 1
    assert vm.gpu_claims() == {"gpu": 1}
    assert again[foreign] == 0  # once: the uptime grows again
    assert again[owned] == 0


def test_foreign_ttl_shorter_than_ttl_is_refused() -> None:
    from provisiond.adapters.proxmox import ProxmoxConnection as Conn

    client = ProxmoxClient(Conn(url="https://pve.invalid:8006", identity="a@pve!t", secret="s"))
    try:
        with pytest.raises(ValueError, match="shorter than cache_ttl"):
            ProxmoxObserver(client, cache_ttl=300, foreign_cache_ttl=299)
    finally:
        client.close()
