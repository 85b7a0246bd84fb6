"""The runtime's listener for metrics and health: register one ``Telemetry`` and both follow.

``Telemetry`` satisfies, structurally, the executor's ``ActionListener`` (``plan_started``,
``action_started``, ``action_finished``) and the reconciler's ``CycleListener``
(``cycle_finished``), and its ``proxmox_request`` / ``kubernetes_request`` match the clients'
``on_request`` hooks. Adapters may not import the runtime (import-linter), so the results it
receives are described by the attributes listeners read (``adapters.results``); tests drive it
through the real executor and reconciler.

What each event does:
- a cycle: ``reconcile_total{result}`` (the cycle's own success/error/requeue), duration, errors;
  the last-success timestamp when it converged; the spec gauge and error count (one count per
  failed *load*, not per cycle that keeps the last good spec); destructive-guard refusals; the
  fleet gauges — but only from an observation whose cluster-wide lists were read, so a Proxmox
  outage freezes them instead of emptying them; a health heartbeat and readiness;
- an action: in-flight up and down (an action skipped without starting never counted in
  flight), then ``actions_total{action,result}`` and its duration; a heartbeat;
- an API request: the request counters and a heartbeat (a long task being polled is a live loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from provisiond.adapters.gauges import blocked_guards, fleet_gauges
from provisiond.adapters.health import Health
from provisiond.adapters.metrics import Metrics
from provisiond.adapters.results import FinishedAction, FinishedCycle
from provisiond.core.actions import Action
from provisiond.core.errors import SpecError
from provisiond.core.plan import Plan


class Telemetry:
    def __init__(
        self, metrics: Metrics, health: Health, *, wall: Callable[[], float] = time.time
    ) -> None:
        self.metrics = metrics
        self.health = health
        self._wall = wall
        self._running: set[str] = set()
        self._spec_error: SpecError | None = None

    # -- ActionListener ------------------------------------------------------------------------
    def plan_started(self, plan: Plan) -> None:  # noqa: ARG002 - the Protocol's signature
        self.health.beat()

    def action_started(self, action: Action) -> None:
        self._running.add(action.id)
        self.metrics.action_started()
        self.health.beat()

    def action_finished(self, result: FinishedAction) -> None:
        started = result.action.id in self._running
        self._running.discard(result.action.id)
        self.metrics.action_finished(
            result.action.kind, str(result.outcome), result.seconds, started=started
        )
        self.health.beat()

    # -- CycleListener -------------------------------------------------------------------------
    def cycle_finished(self, result: FinishedCycle) -> None:
        m = self.metrics
        m.reconcile_finished(
            result.result, result.seconds, converged_at=self._wall() if result.converged else None
        )
        error = result.spec_error
        m.spec_loaded(valid=error is None)
        if error is not None and error is not self._spec_error:
            m.spec_load_failed()
        self._spec_error = error
        observed, plan = result.observed, result.plan
        if plan is not None:
            m.blocked(blocked_guards(plan))
        if observed is None:
            self.health.beat()
            return
        complete = observed.unobserved.vmids_trustworthy
        self.health.observation(proxmox_ok=complete)
        if complete and plan is not None:
            g = fleet_gauges(observed, plan)
            m.set_fleet(drift=g.drift, gpus=g.gpus, allocation=g.allocation)

    # -- request hooks (ProxmoxClient / Kubernetes client ``on_request``) ---------------------
    def proxmox_request(self, method: str, endpoint: str, code: str, seconds: float) -> None:
        self.metrics.observe_proxmox_request(method, endpoint, code, seconds)
        self.health.beat()

    def kubernetes_request(self, method: str, endpoint: str, code: str, seconds: float) -> None:
        self.metrics.observe_kubernetes_request(method, endpoint, code, seconds)
        self.health.beat()
