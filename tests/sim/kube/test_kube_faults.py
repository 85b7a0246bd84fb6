"""Fault seams seen by the official client: injected 5xx with Status bodies, 429 with
Retry-After (which the sync client retries by itself), latency, failures after the effect
happened, and rate/times limits. (Watch faults: test_kube_watch.py.)"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes.client import ApiException
from pydantic import ValidationError

from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.faults import KubeFault

pytestmark = pytest.mark.integration


def test_injected_error_once(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    kube.inject("nodes", verb="get", status=503, times=1)
    with pytest.raises(ApiException) as info:
        core.read_node("a")
    assert info.value.status == 503
    body = json.loads(info.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "ServiceUnavailable", 503)
    assert core.read_node("a").metadata.name == "a"  # only once
    core.list_node()  # another verb is not affected
    assert kube.fault_counts() == {("get", "nodes", "error 503"): 1}


def test_too_many_requests_with_retry_after_is_retried_by_the_client(
    kube: KubeSim, core: Any
) -> None:
    kube.add_node("a")
    kube.inject("nodes", verb="list", status=429, retry_after=1, times=1)
    started = time.monotonic()
    assert [n.metadata.name for n in core.list_node().items] == ["a"]
    assert time.monotonic() - started >= 0.9
    assert kube.request_counts()[("list", "nodes")] == 2


def test_latency_and_failure_after_the_effect(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    kube.inject("nodes", verb="get", latency=0.4)
    started = time.monotonic()
    core.read_node("a")
    assert time.monotonic() - started >= 0.4
    kube.clear_faults()
    kube.inject("nodes", verb="patch", status=500, when="after", times=1)
    with pytest.raises(ApiException) as info:
        core.patch_node("a", {"metadata": {"labels": {"x": "1"}}})
    assert info.value.status == 500
    assert json.loads(info.value.body)["reason"] == "InternalError"
    assert core.read_node("a").metadata.labels["x"] == "1"  # the write happened


def test_rate_is_seeded_and_rules_are_checked(kube: KubeSim, core: Any) -> None:
    kube.add_node("a")
    kube.inject("nodes", verb="get", status=500, rate=0.5)
    outcomes = []
    for _ in range(20):
        try:
            core.read_node("a")
            outcomes.append(True)
        except ApiException:
            outcomes.append(False)
    assert 0 < outcomes.count(False) < 20
    with pytest.raises(ValidationError):
        KubeFault(status=500, latency=1.0)
