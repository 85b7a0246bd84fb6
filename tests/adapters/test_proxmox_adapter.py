"""The Proxmox adapter against the simulator, through the real proxmoxer client over HTTPS.

Error mapping by status *and* message, wire encoding (0/1 booleans, URL-encoded sshkeys),
metrics by endpoint template, TLS verification, and what a steady-state observation costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from provisiond.adapters.metrics import Metrics
from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection, encode_params
from provisiond.adapters.pve_actions import ProxmoxActions
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.core.errors import AuthError, LockedError, PermanentError, TLSError
from provisiond.core.observed import VMStatus
from provisiond.core.topology import Topology
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import load_topology, running_simulator

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"


def _conn(sim: SimHandle, **kw: Any) -> ProxmoxConnection:
    tokenid, _, secret = sim.token.rpartition("=")
    base: dict[str, Any] = {
        "url": sim.url,
        "identity": tokenid,
        "secret": secret,
        "verify": sim.ca_path,
    }
    base.update(kw)
    return ProxmoxConnection(**base)


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with running_simulator("cps-gpu", time_scale=0.002) as handle:
        yield handle


def test_encode_params_matches_what_pve_accepts() -> None:
    assert encode_params(
        {"full": True, "online": False, "x": None, "sshkeys": "ssh-ed25519 A b\n"}
    ) == {
        "full": 1,
        "online": 0,
        "sshkeys": "ssh-ed25519%20A%20b%0A",
    }


def test_connection_repr_hides_the_secret(sim: SimHandle) -> None:
    conn = _conn(sim)
    assert conn.secret not in repr(conn)


async def test_clone_configure_start_and_read_back(sim: SimHandle) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    client = ProxmoxClient(_conn(sim), on_request=metrics.observe_proxmox_request)
    observer = ProxmoxObserver(client)
    actions = ProxmoxActions(
        client, invalidate=observer.invalidate, on_task=metrics.observe_proxmox_task
    )
    try:
        task = await actions.clone(
            template_host=NODE,
            template_vmid=9000,
            newid=1035,
            name="k3s-cp1",
            description="provisiond:cps-gpu/k3s-cp1",
            target=None,
            full=True,  # sent as 1: PVE rejects "True"
            storage="local-nvme",
            pool=None,
        )
        assert task.node == NODE
        assert ":qmclone:9000:" in task.upid  # logged under the template's VMID
        status = await _wait(actions, task)
        assert status.ok
        assert (await actions.task_status(task)).ok  # read again: timed once, not twice
        keys = "ssh-ed25519 AAAAC3Nza user@host\nssh-rsa AAAAB3 other@host"
        await actions.configure(
            host=NODE,
            vmid=1035,
            values={"cores": "4", "memory": "16384", "sshkeys": keys},
            delete=(),
        )
        assert (await _wait(actions, await actions.start(host=NODE, vmid=1035))).ok
        state = await observer.observe()
        vm = next(v for v in state.vms if v.vmid == 1035)
        assert vm.status is VMStatus.RUNNING
        assert vm.config is not None
        assert vm.config.cores == 4
        assert vm.config.memory_mib == 16384
        assert vm.config.sshkeys == keys  # URL-encoded on the wire, decoded on the way back
        assert vm.config.description == "provisiond:cps-gpu/k3s-cp1"
        assert await observer.find_vm(4242) is None
        await actions.configure(host=NODE, vmid=1035, values={"cores": "6"}, delete=())
        fresh = await observer.find_vm(1035)  # the write invalidated the cache: read again
        assert fresh is not None
        assert fresh.config is not None
        assert fresh.config.cores == 4  # running: a cores change waits for the next boot
        assert fresh.pending is not None
        assert fresh.pending.cores == 6
        assert fresh.config.description == "provisiond:cps-gpu/k3s-cp1"  # the marker shows
    finally:
        client.close()
    count = registry.get_sample_value(
        "provisiond_proxmox_requests_total",
        {"method": "POST", "endpoint": "/nodes/{node}/qemu/{vmid}/clone", "code": "200"},
    )
    assert count == 1.0  # labelled by template, never by VMID
    for task_type in ("qmclone", "qmstart"):  # each task this process started, timed once
        timed = {"type": task_type}
        assert (
            registry.get_sample_value("provisiond_proxmox_task_duration_seconds_count", timed) == 1
        )
        assert registry.get_sample_value("provisiond_proxmox_task_duration_seconds_sum", timed) > 0


async def _wait(actions: ProxmoxActions, task: Any) -> Any:
    for _ in range(2000):
        status = await actions.task_status(task)
        if not status.running:
            return status
        await asyncio.sleep(0.005)
    raise AssertionError("task did not finish")


async def test_errors_are_mapped_by_status_and_message(sim: SimHandle) -> None:
    client = ProxmoxClient(_conn(sim))
    actions = ProxmoxActions(client)
    try:
        sim.set_lock(9000, "backup")
        with pytest.raises(LockedError) as locked:
            await actions.configure(host=NODE, vmid=9000, values={"cores": "2"}, delete=())
        assert locked.value.lock == "backup"
        assert "PUT /nodes/{node}/qemu/{vmid}/config: 500 VM is locked (backup)" in str(
            locked.value
        )
        sim.set_lock(9000, None)
        with pytest.raises(PermanentError, match="does not exist"):
            await actions.configure(host=NODE, vmid=4242, values={"cores": "2"}, delete=())
        with pytest.raises(PermanentError, match=r"Parameter verification failed\. \(cores:"):
            await actions.configure(host=NODE, vmid=9000, values={"cores": "many"}, delete=())
        with pytest.raises(PermanentError, match="only root can set 'hostpci0'"):
            await actions.configure(
                host=NODE, vmid=9000, values={"hostpci0": "host=0000:01:00.0"}, delete=()
            )
    finally:
        client.close()


async def test_a_wrong_token_is_an_auth_error_never_retried(sim: SimHandle) -> None:
    client = ProxmoxClient(_conn(sim, secret="00000000-0000-0000-0000-000000000000"))
    try:
        with pytest.raises(
            AuthError, match=r"^authentication failed for token .* — check token id and secret$"
        ) as exc:
            await client.get("/version")
        assert "00000000-0000" not in str(exc.value)
    finally:
        client.close()


async def test_an_unknown_ca_fails_tls_verification_clearly(sim: SimHandle) -> None:
    client = ProxmoxClient(_conn(sim, verify=True))  # system CAs do not know the simulator
    try:
        with pytest.raises(TLSError, match=r"^TLS: certificate of .* not trusted by the system"):
            await client.get("/version")
    finally:
        client.close()


def test_a_plain_http_url_is_refused() -> None:
    with pytest.raises(PermanentError, match="https://"):
        ProxmoxClient(ProxmoxConnection(url="http://pve:8006", identity="a@pve!b", secret="s"))


def _synthetic(vms: int) -> Topology:
    base = load_topology("cps-gpu").model_dump(by_alias=True, mode="json")
    base["spec"]["vms"] = [
        {
            "vmid": 2000 + i,
            "name": f"vm{i}",
            "host": NODE,
            "status": "stopped",
            "cores": 1,
            "memory": "1GiB",
            "storage": "local-nvme",
            "disks": [{"slot": "scsi0", "size": "1GiB"}],
        }
        for i in range(vms)
    ]
    return Topology.model_validate(base)


@pytest.mark.parametrize("vms", [50, 500])
async def test_steady_state_observation_costs_the_same_at_any_size(vms: int) -> None:
    with running_simulator(_synthetic(vms), time_scale=0.002) as handle:
        client = ProxmoxClient(_conn(handle))
        # The clock stands still: no VM's phased config refresh comes due between the cycles
        # (with a real clock ~N x elapsed / TTL would, by design: see the spread test below).
        observer = ProxmoxObserver(client, cache_ttl=300, clock=lambda: 1000.0)
        try:
            first = await observer.observe()
            assert len([v for v in first.vms if not v.template]) == vms
            handle.reset_counts()
            second = await observer.observe()
        finally:
            client.close()
        counts = {k: n for k, n in handle.request_counts().items() if n}
    assert second.vms == first.vms
    assert counts == {("GET", "/cluster/resources"): 1, ("GET", "/cluster/tasks"): 1}
    print(f"{vms} VMs: steady-state observe = {sum(counts.values())} requests")


async def test_a_change_in_the_resource_list_refreshes_only_that_vm() -> None:
    with running_simulator(_synthetic(20), time_scale=0.002) as handle:
        client = ProxmoxClient(_conn(handle))
        observer = ProxmoxObserver(client, cache_ttl=300, clock=lambda: 1000.0)  # nothing due
        try:
            await observer.observe()
            handle.set_config(2003, cores=2)  # maxcpu changes in /cluster/resources
            handle.reset_counts()
            state = await observer.observe()
        finally:
            client.close()
        pending_reads = handle.requests("GET", "/nodes/{node}/qemu/{vmid}/pending")
    assert pending_reads == 1
    vm = next(v for v in state.vms if v.vmid == 2003)
    assert vm.config is not None
    assert vm.config.cores == 2


async def test_a_forbidden_pci_list_is_an_answer_not_a_failed_read(sim: SimHandle) -> None:
    # A token that manages VMs and storage but lacks Sys.Audit cannot read host PCI lists.
    sim.add_user("fleet@pve")
    token = sim.add_token("fleet@pve", "ci")
    sim.set_acl("/", "PVEVMAdmin", users=["fleet@pve"])
    sim.set_acl("/storage", "PVEDatastoreUser", users=["fleet@pve"])
    tokenid, _, secret = token.rpartition("=")
    client = ProxmoxClient(_conn(sim, identity=tokenid, secret=secret))
    try:
        observer = ProxmoxObserver(client)
        state = await observer.observe()
        sim.reset_counts()
        await observer.observe()  # cached like any answer: not asked again every cycle
    finally:
        client.close()
    assert sim.requests("GET", "/nodes/{node}/hardware/pci") == 0
    assert state.read_failures == ()  # nothing keeps the daemon from calling this converged
    assert state.unobserved.vmids_trustworthy
    host = next(h for h in state.hosts if h.name == NODE)
    assert host.storage("local-nvme") is not None
    assert host.pci_devices == ()


async def test_a_failing_secondary_read_is_partial_not_a_blind_spot(sim: SimHandle) -> None:
    sim.inject("/nodes/{node}/storage", method="GET", status=503, message="Service Unavailable")
    client = ProxmoxClient(_conn(sim))
    try:
        state = await ProxmoxObserver(client).observe()
    finally:
        client.close()
    assert state.unobserved.partial == (f"nodes/{NODE}/storage",)
    assert state.unobserved.lists == ()  # VMIDs are still trustworthy
    assert state.read_failures == (f"nodes/{NODE}/storage",)  # retried soon, not converged
    host = next(h for h in state.hosts if h.name == NODE)
    assert host.storages == ()  # unseen storage is absent: nothing is placed on it


async def test_ticket_auth_logs_in_and_relogs_in_once_after_expiry(sim: SimHandle) -> None:
    sim.add_user("ops@pve", password="s3cret-pw")
    sim.set_acl("/", "Administrator", users=["ops@pve"])
    client = ProxmoxClient(_conn(sim, identity="ops@pve", secret="s3cret-pw"))
    try:
        assert (await client.get("/version"))["version"]
        sim.reset_counts()
        sim.expire_tickets()
        assert (await client.get("/version"))["version"]  # 401, one fresh login, retried
        assert sim.requests("POST", "/access/ticket") == 1
        actions = ProxmoxActions(client)  # writes carry the CSRF token
        await actions.configure(host=NODE, vmid=9000, values={"description": "x"}, delete=())
    finally:
        client.close()
    bad = ProxmoxClient(_conn(sim, identity="ops@pve", secret="wrong-pw"))
    try:
        with pytest.raises(AuthError, match="authentication failed for user ops@pve") as exc:
            await bad.get("/version")
        assert "wrong-pw" not in str(exc.value)
    finally:
        bad.close()


async def test_config_refreshes_after_the_ttl_are_spread_over_cycles() -> None:
    """Each VM is re-read once per TTL on its own phase: after a cold cycle that read them all,
    a cycle every fifth of the TTL re-reads about a fifth of them, every cycle."""
    now = [0.0]
    with running_simulator(_synthetic(100), time_scale=0.002) as handle:
        client = ProxmoxClient(_conn(handle))
        observer = ProxmoxObserver(client, cache_ttl=100, clock=lambda: now[0])
        pending = "/nodes/{node}/qemu/{vmid}/pending"
        try:
            await observer.observe()  # cold: every config read
            refetched = []
            for t in (20.0, 40.0, 60.0, 80.0, 100.0, 120.0):
                now[0] = t
                handle.reset_counts()
                await observer.observe()
                refetched.append(handle.requests("GET", pending))
        finally:
            client.close()
    assert all(10 <= n <= 30 for n in refetched), refetched  # evenly: ~101 / 5 each cycle
    assert sum(refetched[:5]) == 101  # within one TTL each VM (and the template) read once
