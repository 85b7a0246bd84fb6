"""Fixtures for the Kubernetes adapters: a running Kubernetes simulator and its kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisiond.adapters.kube import KubernetesSettings
from provisiond.sim.kube import KubeSim, Options
from provisiond.sim.kube.testing import running_kube


@pytest.fixture
def kube() -> Iterator[KubeSim]:
    with running_kube(Options(bookmark_interval=0.3, pod_termination=0.05)) as sim:
        yield sim


@pytest.fixture
def kube_settings(kube: KubeSim, tmp_path: Path) -> KubernetesSettings:
    path = kube.write_kubeconfig(tmp_path / "kubeconfig")
    return KubernetesSettings(kubeconfig=path, reconnect_initial=0.05, reconnect_max=0.2)
