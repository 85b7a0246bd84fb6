"""The Kubernetes connection: settings (section ``kubernetes:``), the ``kubernetes.aio`` client,
and the one place Kubernetes API errors become the core's exception tree.

Where the connection comes from, first match wins (``connection_source``):
1. ``kubernetes.kubeconfig`` (a path; ``kubernetes.context`` picks a context);
2. the in-cluster service account, when running in a pod (``KUBERNETES_SERVICE_HOST`` set);
3. ``$KUBECONFIG`` (its first path);
4. none: Kubernetes is off, and the daemon says so at start. ``enabled: false`` turns it off
   whatever is configured.

TLS is always verified against the kubeconfig's (or the service account's) CA. Tokens live in
the client's configuration only: messages built here carry the endpoint template, the status
and the API's reason, never a header.

Every call made through ``KubeCalls.call`` is reported to ``on_request(method, endpoint,
code, seconds)`` with a bounded endpoint template (``/api/v1/nodes/{name}``), as the Proxmox
adapter does; kube-drain's pod adapter uses the same ``KubeCalls``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp
from kubernetes.aio import client as kclient
from kubernetes.aio import config as kconfig
from kubernetes.aio.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field
from yaml import YAMLError

from provisiond.core.errors import AuthError, ConfigError, PermanentError, TransientError
from provisiond.core.ports import ConflictError

T = TypeVar("T")

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
KUBECONFIG_ENV = "KUBECONFIG"


class KubernetesSettings(BaseModel):
    """How provisiond reaches the Kubernetes API of the cluster in its VMs."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True, description="false: never talk to Kubernetes, even when configured"
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file; unset: in-cluster config in a pod, else $KUBECONFIG",
    )
    context: str | None = Field(
        default=None, description="kubeconfig context (default: its current-context)"
    )
    node_join_timeout: float = Field(
        default=900.0,
        gt=0,
        description="seconds a running VM may go without its node appearing before it is reported",
    )
    request_timeout: float = Field(
        default=10.0, gt=0, description="seconds for one Kubernetes request (watches excepted)"
    )
    watch_timeout: int = Field(
        default=290, ge=10, le=3600, description="seconds a node watch lasts before it is renewed"
    )
    reconnect_initial: float = Field(
        default=0.5, gt=0, description="seconds before the first watch reconnect (jittered)"
    )
    reconnect_max: float = Field(
        default=30.0, gt=0, description="longest wait between watch reconnects"
    )


@dataclass(frozen=True, slots=True)
class ConnectionSource:
    """Where the Kubernetes connection comes from (``describe`` is safe to log)."""

    kubeconfig: Path | None  # None: the in-cluster service account
    context: str | None

    def describe(self) -> str:
        if self.kubeconfig is None:
            return "in-cluster service account"
        ctx = f" (context {self.context})" if self.context else ""
        return f"kubeconfig {self.kubeconfig}{ctx}"


def connection_source(
    settings: KubernetesSettings, environ: Mapping[str, str] = os.environ
) -> ConnectionSource | str:
    """The source to use, or why Kubernetes is off (a sentence for the start-up log)."""
    if not settings.enabled:
        return "kubernetes.enabled is false"
    if settings.kubeconfig is not None:
        return ConnectionSource(settings.kubeconfig, settings.context)
    if environ.get(IN_CLUSTER_ENV):
        return ConnectionSource(None, None)
    first = environ.get(KUBECONFIG_ENV, "").split(os.pathsep)[0]
    if first:
        return ConnectionSource(Path(first), settings.context)
    return "no kubernetes.kubeconfig, not in a pod, and $KUBECONFIG unset"


async def kube_api(
    settings: KubernetesSettings, environ: Mapping[str, str] = os.environ
) -> kclient.ApiClient:
    """A ``kubernetes.aio`` ApiClient for the configured cluster (close it: ``await .close()``).

    Raises ``ConfigError`` when Kubernetes is off or the kubeconfig cannot be loaded."""
    source = connection_source(settings, environ)
    if isinstance(source, str):
        raise ConfigError(f"Kubernetes is off: {source}")
    configuration = kclient.Configuration()
    # kubernetes.aio.config ships no annotations (its client package does): hence the ignores
    try:
        if source.kubeconfig is None:
            kconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(source.kubeconfig),
                context=source.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (kconfig.ConfigException, OSError, ValueError, YAMLError) as exc:
        raise ConfigError(f"cannot load Kubernetes config from {source.describe()}: {exc}") from exc
    return kclient.ApiClient(configuration)


class RequestObserver(Protocol):
    def __call__(self, method: str, endpoint: str, code: str, seconds: float) -> None: ...


def _reason(exc: ApiException) -> str:
    """The API's own message from a Status body, else the HTTP reason (never headers)."""
    try:
        body = json.loads(exc.body or "")
    except (ValueError, TypeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.reason or "")


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_error(exc: BaseException, what: str) -> Exception:
    """A Kubernetes client failure as the core error to raise (``raise map_error(e) from e``):
    409 → ``ConflictError``; 429, 5xx, timeouts and connection errors → ``TransientError``;
    401/403 → ``AuthError``; other 4xx → ``PermanentError``."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        text = f"{what}: {status} {_reason(exc)}".rstrip()
        if status == 409:
            return ConflictError(text)
        if status == 429 or status >= 500 or status == 0:
            return TransientError(text, retry_after=_retry_after(exc))
        if status in (401, 403):
            return AuthError(text)
        return PermanentError(text)
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def status_code(exc: BaseException | None) -> str:
    """The metrics label of a call's outcome: the HTTP status, or ``error`` without one."""
    if exc is None:
        return "200"
    if isinstance(exc, ApiException) and exc.status:
        return str(exc.status)
    return "error"


class KubeCalls:
    """Runs Kubernetes calls: times them for ``on_request`` and maps their errors.

    ``api`` is the ApiClient, or an async factory of it (``lambda: kube_api(settings)``) for
    wiring that runs before the event loop does: the client is then made on first use."""

    def __init__(
        self,
        api: kclient.ApiClient | Callable[[], Awaitable[kclient.ApiClient]],
        *,
        request_timeout: float = 10.0,
        on_request: RequestObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._api = api if isinstance(api, kclient.ApiClient) else None
        self._factory = None if isinstance(api, kclient.ApiClient) else api
        self.request_timeout = request_timeout
        self._on_request = on_request
        self._clock = clock

    @property
    def api(self) -> kclient.ApiClient:
        """The client; with a factory, only after ``await client()``."""
        if self._api is None:
            raise RuntimeError("KubeCalls.api before await client()")
        return self._api

    async def client(self) -> kclient.ApiClient:
        if self._api is None:
            assert self._factory is not None
            self._api = await self._factory()
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()  # type: ignore[no-untyped-call]  # unannotated upstream

    async def call(self, method: str, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` (one request to ``endpoint``, a template); errors as ``map_error``."""
        started = self._clock()
        failure: BaseException | None = None
        try:
            return await fn()
        except ApiException as exc:
            failure = exc
            raise map_error(exc, f"{method} {endpoint}") from exc
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            failure = exc
            raise map_error(exc, f"{method} {endpoint}") from exc
        finally:
            if self._on_request is not None:
                self._on_request(method, endpoint, status_code(failure), self._clock() - started)

    def report(self, method: str, endpoint: str, code: str, seconds: float) -> None:
        """For calls timed elsewhere (a watch's opening)."""
        if self._on_request is not None:
            self._on_request(method, endpoint, code, seconds)
