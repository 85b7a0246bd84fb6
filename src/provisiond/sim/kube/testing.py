"""Helpers for tests: start the Kubernetes simulator, get a real client for it.

``running_kube`` yields a started ``KubeSim``; ``api_client`` builds the official sync
``kubernetes.client.ApiClient`` and ``aio_api_client`` the ``kubernetes.aio`` one, both with TLS
verified against the simulator's CA and its bearer token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from provisiond.sim.kube.cluster import Options
from provisiond.sim.kube.server import KubeSim


@contextmanager
def running_kube(options: Options | None = None) -> Iterator[KubeSim]:
    sim = KubeSim(options).start()
    try:
        yield sim
    finally:
        sim.stop()


def api_client(sim: KubeSim) -> Any:
    """``kubernetes.client.ApiClient`` for ``sim`` (close it, or use it as a context manager)."""
    from kubernetes import client  # noqa: PLC0415 - only tests need the client library

    return _connected(client, sim)


def aio_api_client(sim: KubeSim) -> Any:
    """``kubernetes.aio.client.ApiClient`` for ``sim`` (``async with`` it)."""
    from kubernetes.aio import client  # noqa: PLC0415 - only tests need the client library

    return _connected(client, sim)


def _connected(client: Any, sim: KubeSim) -> Any:
    """An ApiClient of ``client`` (either package's ``client`` module: the same API)."""
    config = client.Configuration(host=sim.url)
    config.ssl_ca_cert = str(sim.ca_path)
    config.api_key = {"authorization": sim.token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(config)
