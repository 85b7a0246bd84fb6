"""The object store: one cluster-wide resourceVersion counter, objects by bucket, the event
history watches resume from, and the open watches.

Invariants: every write takes the next resourceVersion (a decimal string on the object); an
object's resourceVersion is the revision of its last write; the history holds the events with
revisions ``> compacted`` in order, at most ``history_size`` of them (older ones are compacted
away, as etcd and the watch cache do); a watch from a revision ``< compacted`` is expired.
Loop-thread owned: handlers, controllers and the handle (through ``KubeSim.call``) all run on
the simulator's loop, so nothing here locks. Objects are stored and handed out as deep copies.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from provisiond.sim.kube.errors import Obj

Key = tuple[str, str]  # (namespace or "", name)


def now() -> str:
    """RFC 3339 with second precision in UTC, as ``metav1.Time`` serialises."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    """``metav1.MicroTime``: six fractional digits, UTC."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(frozen=True, slots=True)
class Event:
    """One write as watches see it; ``old`` is the previous state (None for ADDED)."""

    rv: int
    bucket: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    """An open watch: events of ``bucket`` (in ``namespace`` unless None) are queued; ``None``
    in the queue ends the stream normally, an ``Obj`` ends it with that ERROR Status."""

    bucket: str
    namespace: str | None
    queue: asyncio.Queue[Event | Obj | None] = field(default_factory=asyncio.Queue)
    transport: asyncio.BaseTransport | None = None


class Store:
    def __init__(self, *, history_size: int = 10_000) -> None:
        self.rv = 0
        self.objects: dict[str, dict[Key, Obj]] = {}
        self.history: deque[Event] = deque()
        self.history_size = history_size
        self.compacted = 0
        self.watchers: set[Watcher] = set()
        # in-process controllers: called after every write, in order (PDB status, kubelet …)
        self.listeners: list[Callable[[Event], None]] = []

    # -- reads -----------------------------------------------------------------------------
    def get(self, bucket: str, namespace: str, name: str) -> Obj | None:
        obj = self.objects.get(bucket, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def all(self, bucket: str, namespace: str | None = None) -> list[Obj]:
        items = self.objects.get(bucket, {})
        return [
            copy.deepcopy(obj)
            for (ns, _name), obj in sorted(items.items())
            if namespace is None or ns == namespace
        ]

    # -- writes ----------------------------------------------------------------------------
    def create(self, bucket: str, obj: Obj) -> Obj:
        """Store a new object: uid, creationTimestamp, resourceVersion (generation 1 when the
        kind tracks it, ``generation`` given as any int)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        return self._write(bucket, obj, None)

    def replace(self, bucket: str, obj: Obj) -> Obj:
        """Write a new state of an existing object (no precondition checks here)."""
        old = self.objects[bucket][key_of(obj)]
        return self._write(bucket, copy.deepcopy(obj), old)

    def delete(self, bucket: str, namespace: str, name: str) -> Obj:
        old = self.objects[bucket].pop((namespace, name))
        self.rv += 1
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(Event(self.rv, bucket, "DELETED", gone, old))
        return copy.deepcopy(gone)

    def _write(self, bucket: str, obj: Obj, old: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects.setdefault(bucket, {})[key_of(obj)] = obj
        self._emit(Event(self.rv, bucket, "ADDED" if old is None else "MODIFIED", obj, old))
        return copy.deepcopy(obj)

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted = self.history.popleft().rv
        for w in list(self.watchers):
            if w.bucket == event.bucket and (
                w.namespace is None or w.namespace == key_of(event.obj)[0]
            ):
                w.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(event)

    # -- history ---------------------------------------------------------------------------
    def compact(self, upto: int | None = None) -> int:
        """Forget the events up to revision ``upto`` (default: all so far); returns it."""
        upto = self.rv if upto is None else min(upto, self.rv)
        while self.history and self.history[0].rv <= upto:
            self.history.popleft()
        self.compacted = max(self.compacted, upto)
        return self.compacted

    def since(self, bucket: str, rv: int) -> list[Event]:
        return [e for e in self.history if e.rv > rv and e.bucket == bucket]

    def watch(self, bucket: str, namespace: str | None) -> Watcher:
        w = Watcher(bucket, namespace)
        self.watchers.add(w)
        return w

    def unwatch(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def end_watches(self, error: Obj | None = None, *, abort: bool = False) -> int:
        """End every open watch: normally, with an ERROR event carrying ``error``, or by
        dropping the connection (``abort``). Returns how many were ended."""
        count = 0
        for w in list(self.watchers):
            count += 1
            if abort and isinstance(w.transport, asyncio.WriteTransport):
                w.transport.abort()
            w.queue.put_nowait(error)
        return count
