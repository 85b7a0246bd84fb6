"""Where the Kubernetes connection comes from, and the client it builds (against the simulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.aio import client

from provisiond.adapters.kube import (
    ConnectionSource,
    KubeCalls,
    KubernetesSettings,
    connection_source,
    kube_api,
)
from provisiond.core.errors import AuthError, ConfigError, PermanentError, TransientError
from provisiond.core.ports import ConflictError
from provisiond.sim.kube import KubeSim


@pytest.mark.parametrize(
    ("settings", "environ", "expected"),
    [
        (
            KubernetesSettings(kubeconfig=Path("/k"), context="c"),
            {},
            ConnectionSource(Path("/k"), "c"),
        ),
        (
            KubernetesSettings(kubeconfig=Path("/k")),
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/e"},
            ConnectionSource(Path("/k"), None),
        ),
        (
            KubernetesSettings(),
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBECONFIG": "/e"},
            ConnectionSource(None, None),
        ),
        (
            KubernetesSettings(context="x"),
            {"KUBECONFIG": "/a:/b"},
            ConnectionSource(Path("/a"), "x"),
        ),
        (KubernetesSettings(), {}, "no kubernetes.kubeconfig, not in a pod, and $KUBECONFIG unset"),
        (
            KubernetesSettings(enabled=False, kubeconfig=Path("/k")),
            {},
            "kubernetes.enabled is false",
        ),
    ],
)
def test_connection_source_order(
    settings: KubernetesSettings, environ: dict[str, str], expected: object
) -> None:
    assert connection_source(settings, environ) == expected


def test_sources_describe_themselves_without_secrets() -> None:
    assert ConnectionSource(None, None).describe() == "in-cluster service account"
    assert ConnectionSource(Path("/k"), "c").describe() == "kubeconfig /k (context c)"


async def test_kube_api_reaches_the_simulator_with_tls_verified(
    kube: KubeSim, kube_settings: KubernetesSettings
) -> None:
    kube.add_node("n1")
    seen: list[tuple[str, str, str]] = []
    api = await kube_api(kube_settings, environ={})
    async with api:
        calls = KubeCalls(api, on_request=lambda m, e, c, _s: seen.append((m, e, c)))
        core = client.CoreV1Api(api)
        nodes = await calls.call("GET", "/api/v1/nodes", core.list_node)
        assert [n.metadata.name for n in nodes.items] == ["n1"]
        with pytest.raises(PermanentError, match="404"):
            await calls.call("GET", "/api/v1/nodes/{name}", lambda: core.read_node("nope"))
    assert seen == [("GET", "/api/v1/nodes", "200"), ("GET", "/api/v1/nodes/{name}", "404")]


async def test_errors_map_by_status(kube: KubeSim, kube_settings: KubernetesSettings) -> None:
    api = await kube_api(kube_settings, environ={})
    async with api:
        calls = KubeCalls(api)
        core = client.CoreV1Api(api)
        for status, error in [(503, TransientError), (429, TransientError), (403, AuthError)]:
            kube.inject("nodes", verb="list", status=status, times=1, retry_after=2)
            with pytest.raises(error) as caught:
                await calls.call("GET", "/api/v1/nodes", core.list_node)
            assert "Bearer" not in str(caught.value)
            if status == 429:
                assert caught.value.retry_after == 2  # type: ignore[attr-defined]
        kube.add_node("n1")
        read = (await core.read_node("n1")).metadata.resource_version
        await core.patch_node("n1", {"metadata": {"labels": {"by": "someone-else"}}})
        stale = {"metadata": {"resourceVersion": read, "labels": {"a": "b"}}}
        with pytest.raises(ConflictError):
            await calls.call("PATCH", "/api/v1/nodes/{name}", lambda: core.patch_node("n1", stale))


async def test_off_and_unreadable_configs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Kubernetes is off"):
        await kube_api(KubernetesSettings(), environ={})
    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [a kubeconfig")
    with pytest.raises(ConfigError, match="cannot load Kubernetes config from kubeconfig"):
        await kube_api(KubernetesSettings(kubeconfig=bad), environ={})


async def test_an_unreachable_server_is_transient(tmp_path: Path, kube: KubeSim) -> None:
    path = kube.write_kubeconfig(tmp_path / "k")
    path.write_text(path.read_text().replace(kube.url, "https://127.0.0.1:9"))
    api = await kube_api(KubernetesSettings(kubeconfig=path), environ={})
    async with api:
        core = client.CoreV1Api(api)
        with pytest.raises(TransientError):
            await KubeCalls(api).call("GET", "/api/v1/nodes", core.list_node)
