"""The per-VM reads and the digest-guarded writes the executor acts on (issue 13, points 7
and 8), against the simulator through the real proxmoxer client: one request per fresh read,
``checksum mismatch`` mapped to ``StaleDigestError``, one listing of a node's running tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.core.observed import VMStatus
from provisiond.core.ports import StaleDigestError
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
TEMPLATE = 9000


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with running_simulator("cps-gpu", time_scale=0.01) as handle:
        yield handle


@pytest.fixture
def client(sim: SimHandle) -> Iterator[ProxmoxClient]:
    tokenid, _, secret = sim.token.rpartition("=")
    c = ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )
    yield c
    c.close()


async def test_fresh_reads_cost_one_request_each_and_say_when_the_vm_is_not_there(
    sim: SimHandle, client: ProxmoxClient
) -> None:
    observer = ProxmoxObserver(client)
    sim.reset_counts()
    vm = await observer.vm_status(TEMPLATE, NODE)
    read = await observer.vm_config(TEMPLATE, NODE)
    assert sum(sim.request_counts().values()) == 2
    assert vm is not None
    assert vm.host == NODE
    assert vm.status is VMStatus.STOPPED
    assert read is not None
    assert read.digest is not None
    assert len(read.digest) == 40
    assert read.config.disks  # parsed like an observation's config
    assert await observer.vm_status(4242, NODE) is None
    assert await observer.vm_config(4242, NODE) is None


async def test_a_stale_digest_is_refused_and_mapped(sim: SimHandle, client: ProxmoxClient) -> None:
    observer = ProxmoxObserver(client)
    actions = ProxmoxActions(client, invalidate=observer.invalidate)
    read = await observer.vm_config(TEMPLATE, NODE)
    assert read is not None
    sim.set_config(TEMPLATE, description="changed by hand")  # someone else writes meanwhile
    with pytest.raises(StaleDigestError, match="checksum mismatch"):
        await actions.configure(
            host=NODE, vmid=TEMPLATE, values={"cores": "3"}, delete=(), digest=read.digest
        )
    assert sim.vm(TEMPLATE).config.get("cores") != 3  # type: ignore[union-attr]
    fresh = await observer.vm_config(TEMPLATE, NODE)
    assert fresh is not None
    await actions.configure(
        host=NODE, vmid=TEMPLATE, values={"cores": "3"}, delete=(), digest=fresh.digest
    )
    again = await observer.vm_config(TEMPLATE, NODE)
    assert again is not None
    assert again.config.cores == 3


async def test_one_listing_shows_every_running_task_of_a_node(
    sim: SimHandle, client: ProxmoxClient
) -> None:
    actions = ProxmoxActions(client)
    refs = [
        await actions.clone(
            template_host=NODE,
            template_vmid=TEMPLATE,
            newid=vmid,
            name=f"t{vmid}",
            description="",
            target=None,
            full=True,
            storage=None,
            pool=None,
        )
        for vmid in (3001, 3002)
    ]
    running = await actions.running_tasks(NODE)
    assert {r.upid for r in refs} <= running
    for _ in range(2000):
        if not {r.upid for r in refs} & await actions.running_tasks(NODE):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("clones did not finish")
    for r in refs:  # left the list: finished, and the status read gives the exit status
        assert (await actions.task_status(r)).ok
