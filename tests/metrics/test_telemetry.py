"""Telemetry turns the runtime's real result objects into metrics and health."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from provisiond.adapters.health import Health
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.telemetry import Telemetry
from provisiond.core.actions import Start
from provisiond.core.errors import SpecError, SpecIssue
from provisiond.core.observed import Host, ObservedState, Unobserved
from provisiond.core.plan import Blocked, Plan
from provisiond.runtime.reconciler import CycleResult
from provisiond.runtime.results import ActionResult, ExecutionReport, Outcome

START = Start(id="start:1", reason="stopped", vmid=1, name="a", host="h")
OBSERVED = ObservedState(hosts=(Host("h", True, 8, 8192),))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def setup() -> tuple[Telemetry, CollectorRegistry, Clock]:
    registry = CollectorRegistry()
    clock = Clock()
    health = Health(interval=lambda: 10.0, grace=0.0, clock=clock)
    return Telemetry(Metrics(registry), health, wall=lambda: 1234.5), registry, clock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_actions_in_flight_counts_and_durations() -> None:
    t, r, _ = setup()
    t.plan_started(Plan(actions=(START,)))
    t.action_started(START)
    assert value(r, "provisiond_actions_in_flight") == 1
    t.action_finished(ActionResult(START, Outcome.SUCCEEDED, seconds=2.5))
    assert value(r, "provisiond_actions_in_flight") == 0
    assert value(r, "provisiond_actions_total", action="start", result="succeeded") == 1
    assert value(r, "provisiond_action_duration_seconds_sum", action="start") == 2.5
    # skipped without starting: counted, never in flight (the gauge does not go negative)
    t.action_finished(ActionResult(START, Outcome.SKIPPED))
    assert value(r, "provisiond_actions_in_flight") == 0
    assert value(r, "provisiond_actions_total", action="start", result="skipped") == 1


def test_a_converged_cycle_sets_success_timestamp_fleet_gauges_and_readiness() -> None:
    t, r, _ = setup()
    t.cycle_finished(CycleResult(1, 0.3, observed=OBSERVED, plan=Plan()))
    assert value(r, "provisiond_reconcile_total", result="success") == 1
    assert value(r, "provisiond_last_successful_reconcile_timestamp_seconds") == 1234.5
    assert value(r, "provisiond_drift_objects", kind="start") == 0
    assert value(r, "provisiond_host_allocation_ratio", host="h", resource="cpu") == 0
    assert t.health.ready() == (True, "ok")


def test_a_cycle_with_work_left_is_a_requeue_and_drift_shows() -> None:
    t, r, _ = setup()
    plan = Plan(actions=(START,), blocked=(Blocked("destroy_limit", "refusing", fleet="f"),))
    report = ExecutionReport((ActionResult(START, Outcome.SUCCEEDED),))
    t.cycle_finished(CycleResult(1, 0.3, observed=OBSERVED, plan=plan, report=report))
    assert value(r, "provisiond_reconcile_total", result="requeue") == 1
    assert value(r, "provisiond_last_successful_reconcile_timestamp_seconds") == 0
    assert value(r, "provisiond_drift_objects", kind="start") == 1
    assert value(r, "provisiond_drift_objects", kind="blocked") == 1
    assert value(r, "provisiond_destructive_actions_blocked_total", reason="destroy_limit") == 1


def test_a_failed_action_makes_an_error_cycle() -> None:
    t, r, _ = setup()
    report = ExecutionReport((ActionResult(START, Outcome.FAILED, detail="boom"),))
    t.cycle_finished(CycleResult(1, 0.3, observed=OBSERVED, plan=Plan((START,)), report=report))
    assert value(r, "provisiond_reconcile_total", result="error") == 1
    assert value(r, "provisiond_reconcile_errors_total") == 1


def test_proxmox_unreachable_freezes_the_fleet_gauges_and_is_not_ready() -> None:
    t, r, _ = setup()
    t.cycle_finished(CycleResult(1, 0.3, observed=OBSERVED, plan=Plan()))
    down = ObservedState(unobserved=Unobserved(lists=("cluster/resources",)))
    t.cycle_finished(CycleResult(2, 0.3, observed=down, plan=Plan()))
    assert value(r, "provisiond_host_allocation_ratio", host="h", resource="cpu") == 0  # kept
    assert value(r, "provisiond_reconcile_total", result="requeue") == 1
    assert t.health.ready() == (False, "Proxmox unreachable or the token rejected (see the logs)")


def test_spec_errors_count_once_per_failed_load_not_per_cycle() -> None:
    t, r, _ = setup()
    bad = SpecError([SpecIssue("fleet.yaml", 3, "spec.pools", "bad")])
    for cid in (1, 2, 3):  # the same failed load, seen by three cycles
        t.cycle_finished(CycleResult(cid, 0.1, observed=OBSERVED, plan=Plan(), spec_error=bad))
    assert value(r, "provisiond_spec_valid") == 0
    assert value(r, "provisiond_spec_load_errors_total") == 1
    t.cycle_finished(CycleResult(4, 0.1, observed=OBSERVED, plan=Plan()))
    assert value(r, "provisiond_spec_valid") == 1
    again = SpecError([SpecIssue("fleet.yaml", 3, "spec.pools", "bad")])
    t.cycle_finished(CycleResult(5, 0.1, observed=OBSERVED, plan=Plan(), spec_error=again))
    assert value(r, "provisiond_spec_load_errors_total") == 2


def test_a_cycle_without_a_spec_beats_but_is_not_an_observation() -> None:
    t, r, clock = setup()
    clock.now = 15.0
    t.cycle_finished(CycleResult(1, 0.1, error="no valid spec loaded yet"))
    assert value(r, "provisiond_reconcile_errors_total") == 1
    assert t.health.ready()[0] is False
    clock.now = 30.0  # 15 s after the beat: within two 10 s intervals
    assert t.health.live()[0] is True
    clock.now = 36.0
    assert t.health.live()[0] is False


def test_request_hooks_count_and_keep_the_loop_live() -> None:
    t, r, clock = setup()
    clock.now = 100.0
    t.proxmox_request("GET", "/nodes/{node}/tasks/{upid}/status", "200", 0.01)
    t.kubernetes_request("GET", "/api/v1/nodes", "200", 0.02)
    assert t.health.live()[0] is True
    assert (
        value(
            r,
            "provisiond_proxmox_requests_total",
            method="GET",
            endpoint="/nodes/{node}/tasks/{upid}/status",
            code="200",
        )
        == 1
    )
    assert (
        value(
            r,
            "provisiond_kubernetes_requests_total",
            method="GET",
            endpoint="/api/v1/nodes",
            code="200",
        )
        == 1
    )
