"""PVE 9.x seen by the observer, through the real proxmoxer client against the simulator: HA
rules and the ``crs`` option read once per refresh period, 8.4's 501 meaning "no rules", a token
without ``Sys.Audit`` on ``/`` assuming the CRS auto-rebalance may be on (said once); and
``provisiond plan`` on the astronomy-lab 9.1 variant reporting the spec/rule conflict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.cli import main
from provisiond.core.topology import Topology
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration

VARIANT = Path(__file__).resolve().parents[1] / "e2e" / "astronomy-lab-9.1"


def _topology(version: str, **spec: Any) -> Topology:
    vm = {"host": "n1", "status": "running", "storage": "nfs", "hastate": "started"}
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "nine"},
            "spec": {
                "pveVersion": version,
                "hosts": [{"name": n, "cpus": 8, "memory": "32GiB"} for n in ("n1", "n2", "n3")],
                "storages": [{"name": "nfs", "type": "nfs", "shared": True, "size": "1TiB"}],
                "vms": [{"vmid": 101, "name": "a", **vm}, {"vmid": 102, "name": "b", **vm}],
                "users": [{"id": "ops@pve", "tokens": [{"id": "tok", "secret": "s3cret"}]}],
                "acls": [{"path": "/vms", "roles": ["PVEVMAdmin"], "users": ["ops@pve"]}],
                **spec,
            },
        }
    )


def _client(sim: SimHandle, token: str | None = None) -> ProxmoxClient:
    tokenid, _, secret = (token or sim.token).rpartition("=")
    return ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )


RULES = [
    {"id": "keep", "type": "node-affinity", "resources": [101], "nodes": ["n1:2", "n2"]},
    {"id": "strict", "type": "node-affinity", "resources": [102], "nodes": ["n3"], "strict": True},
    {
        "id": "off",
        "type": "resource-affinity",
        "resources": [101, 102],
        "affinity": "negative",
        "disable": True,
    },
    {"id": "apart", "type": "resource-affinity", "resources": [101, 102], "affinity": "negative"},
]


@pytest.fixture
def sim9() -> Iterator[SimHandle]:
    crs = {"ha": "static", "haAutoRebalance": True}
    with running_simulator(_topology("9.1", haRules=RULES, crs=crs), time_scale=0.01) as sim:
        yield sim


async def test_rules_and_crs_read_once_per_refresh_period(sim9: SimHandle) -> None:
    now = [0.0]
    client = _client(sim9)
    try:
        observer = ProxmoxObserver(client, cache_ttl=60, clock=lambda: now[0])
        ha = (await observer.observe()).ha
        assert ha.auto_rebalance is True
        keep, strict = ha.node_affinity
        assert (keep.rule, dict(keep.nodes), keep.strict) == ("keep", {"n1": 2, "n2": 0}, False)
        assert (strict.rule, strict.vmids, strict.strict) == ("strict", frozenset({102}), True)
        assert [r.rule for r in ha.resource_affinity] == ["apart"]  # the disabled one dropped
        assert ha.partners(101, positive=False) == (("apart", 102),)
        await observer.observe()
        assert sim9.requests("GET", "/cluster/ha/rules") == 1
        assert sim9.requests("GET", "/cluster/options") == 1
        now[0] = 61.0
        await observer.observe()
        assert sim9.requests("GET", "/cluster/ha/rules") == 2
    finally:
        client.close()


async def test_without_sys_audit_auto_rebalance_may_be_on_said_once(sim9: SimHandle) -> None:
    client = _client(sim9, "ops@pve!tok=s3cret")
    try:
        now = [0.0]
        observer = ProxmoxObserver(client, cache_ttl=60, clock=lambda: now[0])
        with capture_logs() as logs:
            first = (await observer.observe()).ha
            now[0] = 61.0  # due again: read again, not said again
            await observer.observe()
        assert first.auto_rebalance is None
        assert first.rules_unread
        assert [e["event"] for e in logs].count("ha_rules_unreadable") == 1
        assert sim9.requests("GET", "/cluster/ha/rules") == 2
    finally:
        client.close()


async def test_on_84_there_are_no_rules_and_no_auto_rebalance() -> None:
    with running_simulator(_topology("8.4"), time_scale=0.01) as sim:
        client = _client(sim)
        try:
            ha = (await ProxmoxObserver(client).observe()).ha
        finally:
            client.close()
        assert ha.node_affinity == ()
        assert ha.auto_rebalance is False
        assert not ha.rules_unread


def test_plan_on_the_91_variant_shows_the_conflict_and_exits_2_for_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    code = main(["plan", "--output", "json", "--detailed-exitcode", "--sim", str(VARIANT)])
    plan = json.loads(capsys.readouterr().out)
    assert code == 2
    [conflict] = plan["conflicts"]
    assert conflict["vm"] == "dc01"
    assert "pins dc01 to node04" in conflict["reason"]
    assert "PVE HA rule 'dc-on-compute' (strict node-affinity)" in conflict["reason"]
    assert not [a for a in plan["actions"] if a["vm"] == "dc01" and a["action"] != "configure"]
