"""Fault injection for the Kubernetes simulator: failing and slow requests on demand.

A ``KubeFault`` matches requests by ``resource`` (an ``fnmatch`` glob on ``<plural>`` or
``<plural>/<subresource>`` with ``.<group>`` for non-core groups, e.g. ``nodes``,
``pods/eviction``, ``leases.coordination.k8s.io``; discovery paths match as their path) and
``verb`` (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``, ``*``).
It fires with probability ``rate`` at most ``times`` times and either answers ``status`` (a
Status with the reason apimachinery uses for the code: 500 InternalError, 503
ServiceUnavailable, 429 TooManyRequests with ``Retry-After``…) or waits ``latency`` seconds.
``when: after`` runs the handler first, so the effect happens and only the answer fails. One
seeded RNG makes runs repeatable. Watch-stream faults (dropping open watches, ERROR 410 on them,
compaction) are methods of ``KubeSim``, not rules.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from provisiond.sim.kube import errors as e


class KubeFault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    resource: str = "*"
    verb: str = "*"
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    times: Annotated[int, Field(ge=1)] | None = None
    when: Literal["before", "after"] = "before"
    status: Annotated[int, Field(ge=400, le=599)] | None = None
    message: str | None = None
    retry_after: Annotated[int, Field(ge=0)] | None = None
    latency: Annotated[float, Field(ge=0.0)] | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> Self:
        if (self.status is None) == (self.latency is None):
            raise ValueError("a fault needs exactly one of status, latency")
        return self

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and fnmatch.fnmatchcase(resource, self.resource)


@dataclass
class _Armed:
    rule: KubeFault
    left: int | None


@dataclass
class Faults:
    """Loop-thread owned, like the store."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - not crypto
    rules: list[_Armed] = field(default_factory=list)
    injected: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # verb, res, kind

    def add(self, rule: KubeFault) -> None:
        self.rules.append(_Armed(rule, rule.times))

    def clear(self) -> None:
        self.rules.clear()

    def seed(self, seed: int) -> None:
        self.rng.seed(seed)

    async def apply(self, when: str, verb: str, resource: str) -> None:
        """Sleep or raise ``KubeError`` as the matching rules say."""
        delay = 0.0
        failure: KubeFault | None = None
        for armed in self.rules:
            rule = armed.rule
            if rule.when != when or not rule.matches(verb, resource) or armed.left == 0:
                continue
            if rule.rate < 1.0 and self.rng.random() >= rule.rate:
                continue
            if armed.left is not None:
                armed.left -= 1
            kind = "latency" if rule.latency is not None else f"error {rule.status}"
            self.injected[(verb, resource, kind)] += 1
            if rule.latency is not None:
                delay += rule.latency
            elif failure is None:
                failure = rule
        if delay:
            await asyncio.sleep(delay)
        if failure is not None and failure.status is not None:
            err = e.generic(failure.status, failure.message)
            if failure.retry_after is not None:
                err.retry_after = failure.retry_after
                err.details = {**(err.details or {}), "retryAfterSeconds": failure.retry_after}
            raise err
