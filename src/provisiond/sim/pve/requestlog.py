"""The request log: every request the simulator answered — 501s, 401s and 4xx included — with
its method, path, endpoint template, parameters, status, duration and sender (``authid``), and
a summary by (method, endpoint template, status).

A record is appended when the request arrives (so a held request is already visible, status
``0``) and completed when it is answered. The summary counts only answered requests and is
kept apart from the log, so clearing the log (``reset_counts``) does not change what
``sim serve --log-requests`` prints at exit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Key = tuple[str, str, int]  # method, endpoint template, status


@dataclass
class RequestRecord:
    """One request. ``params`` are merged (query over body) but not yet verified; ``template``
    is the endpoint template, or the path itself when no route matches (a 501)."""

    method: str
    template: str
    path: str
    params: dict[str, str]
    status: int = 0  # 0 while the request is being served
    duration: float = 0.0  # wall seconds from arrival to answer
    latency: float = 0.0  # wall seconds of injected latency (faults) within ``duration``
    authid: str = ""  # who sent it: the user or API token id ("" before authentication)


@dataclass
class RequestLog:
    records: list[RequestRecord] = field(default_factory=list)
    counts: Counter[Key] = field(default_factory=Counter)
    seconds: dict[Key, float] = field(default_factory=dict)

    def arrived(self, record: RequestRecord) -> None:
        self.records.append(record)

    def answered(self, record: RequestRecord) -> None:
        key = (record.method, record.template, record.status)
        self.counts[key] += 1
        self.seconds[key] = self.seconds.get(key, 0.0) + record.duration

    def clear(self) -> None:
        self.records.clear()

    def summary(self) -> str:
        """A table of the answered requests, one line per (method, template, status)."""
        if not self.counts:
            return "requests: none"
        lines = [f"requests: {sum(self.counts.values())}"]
        lines.append(f"{'count':>7} {'status':>6} {'mean ms':>8}  method endpoint")
        for key, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            method, template, status = key
            mean = 1000 * self.seconds[key] / n
            lines.append(f"{n:>7} {status:>6} {mean:>8.1f}  {method} {template}")
        return "\n".join(lines)
