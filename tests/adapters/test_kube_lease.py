"""The Lease adapter with the real ``kubernetes.aio`` client against the Kubernetes simulator,
and the elector running on it: creation, resourceVersion conflicts, MicroTime in UTC with six
digits, release, failures on renew."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from provisiond.adapters.kube_lease import KubeLease, micro_time
from provisiond.core.errors import ConfigError, TransientError
from provisiond.core.ports import LeaseRecord
from provisiond.runtime.leader import ElectionConfig, LeaderElector
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import running_kube

pytestmark = pytest.mark.integration

MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FAST = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.2}


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeSim]:
    with running_kube() as sim:
        yield sim


@pytest.fixture
def kubeconfig(kube: KubeSim, tmp_path: Path) -> Path:
    return kube.write_kubeconfig(tmp_path / "kubeconfig")


def lease(kubeconfig: Path, name: str) -> KubeLease:
    return KubeLease(name=name, namespace="default", kubeconfig=kubeconfig)


def test_micro_time_is_utc_with_six_digits() -> None:
    cest = timezone(timedelta(hours=2))
    assert micro_time(datetime(2030, 5, 1, 14, 0, 0, tzinfo=cest)) == "2030-05-01T12:00:00.000000Z"
    assert (
        micro_time(datetime(2030, 5, 1, 12, 0, 0, 5, tzinfo=UTC)) == "2030-05-01T12:00:00.000005Z"
    )
    with pytest.raises(ValueError, match="aware"):
        micro_time(datetime(2030, 5, 1))  # noqa: DTZ001 - the naive time being refused


async def test_create_get_update_with_conflicts(kube: KubeSim, kubeconfig: Path) -> None:
    a, b = lease(kubeconfig, "crud"), lease(kubeconfig, "crud")
    try:
        assert await a.get() is None
        t0 = datetime(2030, 1, 1, tzinfo=UTC)  # zero microseconds: still six digits
        created = await a.create(LeaseRecord("a", 15, t0, t0, 0))
        assert created.version
        stored = kube.get("leases", "crud", "default")
        assert stored is not None
        assert stored["spec"]["renewTime"] == "2030-01-01T00:00:00.000000Z"
        with pytest.raises(TransientError, match="409"):
            await b.create(LeaseRecord("b", 15, t0, t0, 0))
        seen_by_b = await b.get()
        assert seen_by_b == created
        renewed = await a.update(
            LeaseRecord("a", 15, t0, t0 + timedelta(seconds=2), 0, created.version)
        )
        assert renewed.renew_time == t0 + timedelta(seconds=2)
        with pytest.raises(TransientError, match=r"409 .*has been modified"):
            await b.update(LeaseRecord("b", 15, t0, t0, 1, seen_by_b.version))
        kube.inject("leases.coordination.k8s.io", verb="get", status=503, times=1)
        with pytest.raises(TransientError, match="503"):
            await a.get()
    finally:
        await a.close()
        await b.close()


async def test_times_are_written_in_utc_whatever_the_local_zone(
    kube: KubeSim, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    client = lease(kubeconfig, "zone")
    elector = LeaderElector(client, ElectionConfig(identity="zoned", **FAST))
    try:
        assert await elector.step()
    finally:
        await client.close()
        monkeypatch.undo()
        time.tzset()
    spec = (kube.get("leases", "zone", "default") or {})["spec"]
    assert MICRO.match(spec["renewTime"]), spec
    written = datetime.fromisoformat(spec["renewTime"])
    assert abs((written - datetime.now(UTC)).total_seconds()) < 5


async def test_two_electors_one_leads_release_hands_over(kube: KubeSim, kubeconfig: Path) -> None:
    ca, cb = lease(kubeconfig, "pair"), lease(kubeconfig, "pair")
    a = LeaderElector(ca, ElectionConfig(identity="a", **FAST))
    b = LeaderElector(cb, ElectionConfig(identity="b", **FAST))
    try:
        results = await asyncio.gather(a.step(), b.step())
        assert sorted(results) == [False, True]  # created by one; the other: 409 or standby
        leader, standby = (a, b) if a.is_leader else (b, a)
        await standby.step()
        assert not standby.is_leader
        await leader.shutdown()
        spec = (kube.get("leases", "pair", "default") or {})["spec"]
        assert spec["holderIdentity"] == ""
        assert spec["leaseDurationSeconds"] == 1
        started = time.monotonic()
        assert await standby.step()
        assert time.monotonic() - started < 1
        spec = (kube.get("leases", "pair", "default") or {})["spec"]
        assert spec["holderIdentity"] == standby.config.identity
        assert spec["leaseTransitions"] == 1
    finally:
        await ca.close()
        await cb.close()


@pytest.mark.parametrize("status", [500, 409])
async def test_failing_renewals_step_down_at_the_deadline(
    kube: KubeSim, kubeconfig: Path, status: int
) -> None:
    client = lease(kubeconfig, f"failing-{status}")
    elector = LeaderElector(client, ElectionConfig(identity="a", **FAST))
    try:
        assert await elector.step()
        kube.inject("leases.coordination.k8s.io", verb="*", status=status)
        started = time.monotonic()
        while elector.is_leader:
            await elector.step()
            await asyncio.sleep(0.2)
        assert 0.9 <= time.monotonic() - started <= 1.6
        assert not elector.may_act()
    finally:
        kube.clear_faults()
        await client.close()


async def test_an_unreadable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    client = KubeLease(name="x", namespace="default", kubeconfig=bad)
    with pytest.raises(ConfigError, match="cannot load the Kubernetes configuration"):
        await client.get()
    missing = KubeLease(name="x", namespace="default", kubeconfig=tmp_path / "nope")
    with pytest.raises(ConfigError):
        await missing.get()
