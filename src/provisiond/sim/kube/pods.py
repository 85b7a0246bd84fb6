"""Pod deletion as the API server and the kubelet carry it out together.

DELETE of a pod bound to a node with a grace period > 0 is graceful: the server sets
``deletionTimestamp`` (now + grace) and ``deletionGracePeriodSeconds`` (a MODIFIED event) and
answers the pod; the simulated kubelet confirms after ``termination`` wall-clock seconds (not the
grace period: the simulated containers stop at once), and the pod is removed (DELETED). A
pod that is not bound, already finished, or deleted with ``gracePeriodSeconds: 0`` is removed at
once. Deleting a terminating pod again changes nothing. ``on_deleted`` hooks (the ReplicaSet
stand-in in ``workloads.py``) run after the final removal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from provisiond.sim.kube.errors import Obj
from provisiond.sim.kube.registry import Registry
from provisiond.sim.kube.resources import POD
from provisiond.sim.kube.store import Store

DEFAULT_GRACE = 30


class PodTermination:
    def __init__(self, store: Store, registry: Registry, *, termination: float = 0.1) -> None:
        self.store = store
        self.termination = termination
        self.on_deleted: list[Callable[[Obj], None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}  # pod uid -> confirmation
        registry.delete_pod = self.delete

    def delete(self, pod: Obj, options: Obj) -> Obj:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return pod
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        grace = int(grace)
        if grace <= 0 or not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return self._remove(meta.get("namespace", ""), meta["name"], meta["uid"]) or pod
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=grace)
        meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = grace
        updated = self.store.replace(POD.bucket, pod)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(
            self.termination, self._confirm, meta.get("namespace", ""), meta["name"], meta["uid"]
        )
        self._timers[meta["uid"]] = timer
        return updated

    def _confirm(self, ns: str, name: str, uid: str) -> None:
        self._timers.pop(uid, None)
        self._remove(ns, name, uid)

    def _remove(self, ns: str, name: str, uid: str) -> Obj | None:
        current = self.store.get(POD.bucket, ns, name)
        if current is None or current["metadata"]["uid"] != uid:
            return None
        gone = self.store.delete(POD.bucket, ns, name)
        for hook in list(self.on_deleted):
            hook(gone)
        return gone

    def cancel(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
