"""The reconciler when Proxmox cannot be talked to at all: unreachable, TLS, a rejected token.

Not a failed read planned around (every VM "unobserved", requeued every 5 s), but a state of its
own: one error event per distinct cause, nothing planned, an incomplete observation (readiness
false), the last good spec kept, and a backoff — minutes for authentication.
"""

from __future__ import annotations

import asyncio
import time

from runtime_fakes import FakeCluster, FakeSpec
from structlog.testing import capture_logs
from test_reconciler import Recorder, fleet, reconciler, until

from provisiond.core.errors import AuthError, ProvisiondError, TLSError, UnreachableError
from provisiond.core.observed import ObservedState
from provisiond.core.pve_errors import error_for


class Broken(FakeCluster):
    """Observation fails with ``failures`` in turn (the last one repeats), then works again."""

    failures: list[ProvisiondError]
    fixed = False
    stamps: list[float]

    async def observe(self) -> ObservedState:
        self.stamps.append(time.monotonic())
        if not self.fixed:
            raise self.failures[0] if len(self.failures) == 1 else self.failures.pop(0)
        return await super().observe()


def broken(*failures: ProvisiondError) -> Broken:
    b = Broken()
    b.failures = list(failures)
    b.stamps = []
    return b


async def test_a_rejected_token_is_logged_once_and_retried_on_a_slow_backoff() -> None:
    cluster = broken(AuthError("authentication failed for token a@pve!b — check token id"))
    rec = Recorder()
    r = reconciler(
        cluster,
        FakeSpec(fleet(101)),
        rec,
        interval=30.0,
        follow_up=0.01,
        debounce=0.0,
        auth_backoff=0.2,
        auth_backoff_max=0.4,
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        loop = asyncio.create_task(r.run(stop))
        await until(rec, lambda _: len(rec.cycles) >= 4)
        stop.set()
        await asyncio.wait_for(loop, 2)
    first = rec.cycles[0]
    assert first.access == "auth"
    assert first.result == "error"
    assert first.plan is None  # nothing planned, nothing executed
    assert first.report is None
    assert first.error is not None
    assert "check token id" in first.error
    assert first.observed is not None
    assert first.observed.read_failures  # an incomplete observation: not ready
    gaps = [b - a for a, b in zip(cluster.stamps, cluster.stamps[1:], strict=False)]
    # backoff 0.2, 0.4, then capped at 0.4 — never the 5 s (here: immediate) requeue path
    assert gaps[0] >= 0.19
    assert all(g >= 0.39 for g in gaps[1:3]), gaps
    errors = [
        e for e in logs if e["event"] == "proxmox_access_failed" and e["log_level"] == "error"
    ]
    assert len(errors) == 1
    assert errors[0]["cause"] == "auth"


async def test_each_distinct_cause_is_logged_once_and_recovery_once() -> None:
    refused = UnreachableError(
        "cannot reach https://pve:8006: connection refused — is the URL right?"
    )
    tls = TLSError("TLS: certificate of https://pve:8006 not trusted by ca_bundle /ca.pem")
    cluster = broken(refused, refused, tls, tls)
    r = reconciler(cluster, FakeSpec(fleet(101)))
    with capture_logs() as logs:
        results = [await r.cycle() for _ in range(4)]
        cluster.fixed = True
        good = await r.cycle()
        again = await r.cycle()
    assert [c.access for c in results] == ["unreachable", "unreachable", "tls", "tls"]
    assert good.access is None
    assert good.error is None
    assert good.plan is not None
    assert again.error is None
    failed = [
        e for e in logs if e["event"] == "proxmox_access_failed" and e["log_level"] == "error"
    ]
    assert [e["cause"] for e in failed] == ["unreachable", "tls"]
    restored = [e for e in logs if e["event"] == "proxmox_access_restored"]
    assert len(restored) == 1
    assert not [e for e in logs if e["event"] == "reconcile_failed"]  # no traceback


async def test_a_403_whose_text_says_try_again_is_an_auth_failure_not_a_fast_retry() -> None:
    forbidden = error_for(403, "Permission check failed - try again later", context="GET /x")
    assert isinstance(forbidden, AuthError)
    cluster = broken(forbidden)
    r = reconciler(cluster, FakeSpec(fleet(101)), auth_backoff=120.0, auth_backoff_max=900.0)
    result = await r.cycle()
    assert result.access == "auth"
    assert r._next_delay(result) == 120.0  # the delay is the point of the test


async def test_unreachable_backs_off_doubling_up_to_a_minute() -> None:
    cluster = broken(UnreachableError("cannot reach https://pve:8006: connection refused"))
    r = reconciler(cluster, FakeSpec(fleet(101)), interval=300.0, follow_up=2.0)
    delays = [r._next_delay(await r.cycle()) for _ in range(6)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


async def test_stop_abandons_an_observation_that_hangs() -> None:
    class Hanging(FakeCluster):
        async def observe(self) -> ObservedState:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

    rec = Recorder()
    r = reconciler(Hanging(), FakeSpec(fleet(101)), rec)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(loop, 2)
    assert time.monotonic() - started < 0.5
    assert rec.cycles[-1].error == "stopped during the observation"
