"""``ProxmoxActions.migrate_precondition`` against the simulator (real proxmoxer over HTTPS):
``GET /nodes/{n}/qemu/{id}/migrate?target=`` becomes a typed ``MigratePrecondition``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with running_simulator("astronomy-lab", time_scale=0.002) as handle:
        yield handle


def _client(sim: SimHandle) -> ProxmoxClient:
    tokenid, _, secret = sim.token.rpartition("=")
    return ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )


async def test_local_disks_and_allowed_nodes(sim: SimHandle) -> None:
    client = _client(sim)
    try:
        actions = ProxmoxActions(client)
        # proj-k8sm01 (101) runs on node01 with its disk on local-nvme (not shared)
        pre = await actions.migrate_precondition(host="node01", vmid=101, target="node02")
        assert pre.running
        assert pre.local_disks == ("scsi0",)
        assert pre.allowed_nodes == ("node02",)  # local-nvme exists on node02 too
        assert pre.local_resources == ()
    finally:
        client.close()


async def test_mapped_devices_missing_on_the_target(sim: SimHandle) -> None:
    client = _client(sim)
    try:
        actions = ProxmoxActions(client)
        task = await actions.shutdown(host="node01", vmid=101, shutdown_timeout=10, force_stop=True)
        for _ in range(2000):  # a stopped VM takes the mapping at once (not pending)
            if (await actions.task_status(task)).ok:
                break
            await asyncio.sleep(0.005)
        await actions.configure(
            host="node01", vmid=101, values={"hostpci0": "mapping=rtx3080"}, delete=()
        )
        pre = await actions.migrate_precondition(host="node01", vmid=101, target="node02")
        assert pre.mapped_resources == ("hostpci0",)
        assert pre.allowed_nodes == ()
        assert pre.not_allowed == {"node02": ("unavailable-resources: hostpci0",)}
    finally:
        client.close()
