"""Fixtures for the Kubernetes simulator's tests: a running ``KubeSim`` and real clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from provisiond.sim.kube import KubeSim, Options
from provisiond.sim.kube.testing import api_client, running_kube


@pytest.fixture
def kube() -> Iterator[KubeSim]:
    with running_kube(Options(bookmark_interval=0.3, pod_termination=0.05)) as sim:
        yield sim


@pytest.fixture
def api(kube: KubeSim) -> Iterator[Any]:
    """``kubernetes.client.ApiClient`` (sync) for ``kube``."""
    with api_client(kube) as client:
        yield client


@pytest.fixture
def core(api: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api)
