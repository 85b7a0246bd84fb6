"""PodDisruptionBudget status (the disruption controller's job) and the eviction subresource.

Status, recomputed synchronously after every pod or PDB spec write in the namespace (so it is
never stale, and ``observedGeneration`` always equals ``generation`` unless a test freezes the
controller with ``paused``):

- ``minAvailable`` integer: ``expectedPods`` = matching pods, ``desiredHealthy`` = the number;
- ``minAvailable`` percent / ``maxUnavailable``: ``expectedPods`` = the scales of the pods'
  controllers (``scales`` when registered, else that controller's matching pods),
  ``desiredHealthy`` = ``ceil(pct x expected)`` or ``max(0, expected - maxUnavailable)``
  (percentages of ``maxUnavailable`` rounded up);
- ``currentHealthy`` = matching pods with condition Ready True, no ``deletionTimestamp`` and not
  in ``disruptedPods``; ``disruptionsAllowed = max(0, healthy - desired)``, 0 when no pods are
  expected. Neither field set: nothing may be disrupted.

Eviction follows ``pkg/registry/core/pod/storage/eviction.go``: Pending/finished/terminating
pods and pods without a PDB are deleted; more than one PDB is a 500; a not-ready pod goes free
while the budget is met; ``disruptionsAllowed == 0`` is 429 ``Cannot evict pod as it would
violate the pod's disruption budget.`` with the ``DisruptionBudget`` cause; otherwise the budget
is spent (``disruptedPods``) and the pod deleted gracefully. Success is 201 with a Success
Status.
"""

from __future__ import annotations

import math
from typing import Any

from provisiond.sim.kube import errors as e
from provisiond.sim.kube.errors import KubeError, Obj
from provisiond.sim.kube.registry import Registry
from provisiond.sim.kube.resources import PDB, POD
from provisiond.sim.kube.selectors import selector_matcher
from provisiond.sim.kube.store import Event, Store, now

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def is_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def controller_of(pod: Obj) -> tuple[str, str] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("kind")), str(ref.get("name"))
    return None


def _percent(value: Any) -> float | None:
    if isinstance(value, str) and value.endswith("%"):
        return float(value[:-1]) / 100.0
    return None


class Disruption:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        # (namespace, controller kind, name) -> replicas (a Deployment's ReplicaSet …)
        self.scales: dict[tuple[str, str, str], int] = {}
        self.paused = False  # a test seam: the controller falls behind (status not updated)
        store.listeners.append(self._on_event)

    def _on_event(self, ev: Event) -> None:
        if self.paused:
            return
        if ev.bucket == POD.bucket or (
            ev.bucket == PDB.bucket and (ev.old is None or ev.obj.get("spec") != ev.old.get("spec"))
        ):
            self.sync(str((ev.obj.get("metadata") or {}).get("namespace") or ""))

    def sync(self, namespace: str) -> None:
        for pdb in self.store.all(PDB.bucket, namespace):
            status = self.status(pdb)
            if status != pdb.get("status"):
                pdb["status"] = status
                self.store.replace(PDB.bucket, pdb)

    def matching(self, pdb: Obj) -> list[Obj]:
        match = selector_matcher((pdb.get("spec") or {}).get("selector"))
        if match is None:
            return []
        ns = pdb["metadata"].get("namespace", "")
        return [
            p
            for p in self.store.all(POD.bucket, ns)
            if match((p.get("metadata") or {}).get("labels") or {})
        ]

    def _expected(self, pods: list[Obj], ns: str) -> int:
        counts: dict[tuple[str, str], int] = {}
        for pod in pods:
            ctl = controller_of(pod)
            if ctl is not None:
                counts[ctl] = counts.get(ctl, 0) + 1
        return sum(self.scales.get((ns, kind, name), n) for (kind, name), n in counts.items())

    def status(self, pdb: Obj) -> Obj:
        spec = pdb.get("spec") or {}
        ns = pdb["metadata"].get("namespace", "")
        old = pdb.get("status") or {}
        pods = self.matching(pdb)
        live = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
        disrupted = {k: v for k, v in (old.get("disruptedPods") or {}).items() if k in live}
        healthy = sum(
            1
            for p in pods
            if is_ready(p)
            and not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"] not in disrupted
        )
        min_av, max_un = spec.get("minAvailable"), spec.get("maxUnavailable")
        if min_av is not None and _percent(min_av) is None:
            expected, desired = len(pods), int(min_av)
        elif min_av is not None:
            expected = self._expected(pods, ns)
            desired = math.ceil((_percent(min_av) or 0.0) * expected)
        elif max_un is not None:
            expected = self._expected(pods, ns)
            pct = _percent(max_un)
            unavailable = math.ceil(pct * expected) if pct is not None else int(max_un)
            desired = max(0, expected - unavailable)
        else:
            expected = len(pods)
            desired = expected
        allowed = max(0, healthy - desired) if expected > 0 else 0
        generation = int(pdb["metadata"].get("generation", 1))
        cond_status = "True" if allowed > 0 else "False"
        previous: Obj = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
        )
        condition = {
            "type": "DisruptionAllowed",
            "status": cond_status,
            "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": previous.get("lastTransitionTime", now())
            if previous.get("status") == cond_status
            else now(),
        }
        out: Obj = {
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [condition],
        }
        if disrupted:
            out["disruptedPods"] = disrupted
        return out

    # -- eviction --------------------------------------------------------------------------
    def evict(self, ns: str, name: str, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise e.bad_request("the body of the request must be an Eviction object")
        if (body.get("metadata") or {}).get("name") not in (None, "", name):
            raise e.bad_request("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        pod = self.store.get(POD.bucket, ns, name)
        if pod is None:
            raise e.not_found("pods", "", name)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
            return self._delete(ns, name, options)
        labels = pod["metadata"].get("labels") or {}
        pdbs = [
            p
            for p in self.store.all(PDB.bucket, ns)
            if (m := selector_matcher((p.get("spec") or {}).get("selector"))) and m(labels)
        ]
        if not pdbs:
            return self._delete(ns, name, options)
        if len(pdbs) > 1:
            raise KubeError(
                500,
                "",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support.",
            )
        pdb = pdbs[0]
        status = pdb.get("status") or {}
        desired, healthy = (
            int(status.get("desiredHealthy", 0)),
            int(status.get("currentHealthy", 0)),
        )
        pdb_name = pdb["metadata"]["name"]
        if not is_ready(pod) and healthy >= desired > 0:
            return self._delete(ns, name, options)
        if int(status.get("observedGeneration", 0)) < int(pdb["metadata"].get("generation", 1)):
            raise _budget(pdb_name, "is still being processed by the server.", retry=10)
        allowed = int(status.get("disruptionsAllowed", 0))
        if allowed < 0:
            raise KubeError(
                403,
                "Forbidden",
                f'poddisruptionbudget.policy "{pdb_name}" is forbidden: pdb disruptions allowed '
                "is negative",
                {"name": pdb_name, "group": "policy", "kind": "poddisruptionbudget"},
            )
        if allowed == 0:
            raise _budget(
                pdb_name, f"needs {desired} healthy pods and has {healthy} currently", retry=0
            )
        status["disruptionsAllowed"] = allowed - 1
        status.setdefault("disruptedPods", {})[name] = now()
        pdb["status"] = status
        self.store.replace(PDB.bucket, pdb)
        return self._delete(ns, name, options)

    def _delete(self, ns: str, name: str, options: Obj) -> Obj:
        self.registry.delete(POD, ns, name, options)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }


def _budget(pdb: str, text: str, *, retry: int) -> KubeError:
    details: Obj = {
        "causes": [{"reason": "DisruptionBudget", "message": f"The disruption budget {pdb} {text}"}]
    }
    if retry:
        details["retryAfterSeconds"] = retry
    err = KubeError(429, "TooManyRequests", VIOLATION, details)
    err.retry_after = retry or None
    return err
