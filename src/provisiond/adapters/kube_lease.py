"""``KubeLease``: the ``LeaseClient`` port on ``kubernetes.aio`` (``coordination.k8s.io/v1``).

Connection: a kubeconfig (``kubernetes.kubeconfig``, else ``$KUBECONFIG``, with an optional
``context``) or, inside a pod, the service account (``load_incluster_config``). The client is
built lazily inside the running event loop (aiohttp needs one); a kubeconfig that cannot be
loaded is a ``ConfigError``, which stops the daemon rather than failing rounds forever.

Why requests go through ``ApiClient.param_serialize``/``call_api`` with plain JSON instead of
``CoordinationV1Api``: the generated methods validate the body into a ``V1Lease`` and serialize
its times with ``datetime.isoformat()``, which drops the fraction when the microseconds are 0
and writes ``+00:00``. A MicroTime must be ``2006-01-02T15:04:05.000000Z07:00`` — always six
fractional digits (SEMANTICS §10) — so times are formatted here (``micro_time``), in UTC, and
sent as strings. Authentication, TLS and the base URL still come from the library.

Errors (core tree): 409 (conflict, already exists), 429, 5xx, timeouts and connection failures
→ ``TransientError`` (the elector's next round retries); 401/403 → ``AuthError``; other 4xx →
``PermanentError``. Messages carry the HTTP status and the API's reason, never a token.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client as kclient
from kubernetes.aio import config as kconfig
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.config.config_exception import ConfigException

from provisiond.core.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    ProvisiondError,
    TransientError,
)
from provisiond.core.ports import LeaseRecord

SERVICE_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def micro_time(when: datetime) -> str:
    """A Kubernetes MicroTime: UTC, exactly six fractional digits, ``Z``."""
    if when.tzinfo is None:
        raise ValueError("a MicroTime needs an aware datetime (naive times are ambiguous)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None  # a malformed time written by another client: not ours to judge


def in_cluster() -> bool:
    """Running in a pod: the service host is in the environment."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def pod_namespace() -> str | None:
    """The pod's namespace (``POD_NAMESPACE`` from the downward API, else the service account
    file — the Python client does not read it itself)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_NAMESPACE.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


async def connect(kubeconfig: Path | None, context: str | None) -> Any:
    """A ``kubernetes.aio`` ApiClient from the kubeconfig, else the in-cluster service account."""
    cfg = kclient.Configuration()
    try:
        if kubeconfig is None and in_cluster() and not os.environ.get("KUBECONFIG"):
            # kubernetes ships no type hints: the two loaders are untyped calls
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            await kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        where = str(kubeconfig) if kubeconfig is not None else "$KUBECONFIG / in-cluster"
        raise ConfigError(f"cannot load the Kubernetes configuration ({where}): {exc}") from None
    return kclient.ApiClient(cfg)


def _error(exc: ApiException, what: str) -> ProvisiondError:
    status = int(exc.status or 0)
    reason = exc.reason or ""
    try:
        body = json.loads(exc.body) if exc.body else {}
        reason = str(body.get("message") or body.get("reason") or reason)
    except (ValueError, AttributeError):
        pass
    text = f"{what}: {status} {reason}".strip()
    if status in (401, 403):
        return AuthError(text)
    if status in (409, 429) or status >= 500:
        retry = exc.headers.get("Retry-After") if exc.headers else None
        return TransientError(text, retry_after=float(retry) if retry and retry.isdigit() else None)
    return PermanentError(text)


def _record(obj: dict[str, Any]) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=parse_time(spec.get("acquireTime")),
        renew_time=parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
    )


class KubeLease:
    """One Lease (``namespace``/``name``). Not thread-safe: use it from the daemon's loop."""

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        kubeconfig: Path | None = None,
        context: str | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self._kubeconfig = kubeconfig
        self._context = context
        self._timeout = request_timeout
        self._api: Any = None

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.version:
            metadata["resourceVersion"] = record.version  # the optimistic-concurrency guard
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,  # "" (present, empty) on release, as client-go
            "leaseDurationSeconds": record.duration_seconds,
            "leaseTransitions": record.transitions,
        }
        if record.acquire_time is not None:
            spec["acquireTime"] = micro_time(record.acquire_time)
        if record.renew_time is not None:
            spec["renewTime"] = micro_time(record.renew_time)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self._api is None:
            self._api = await connect(self._kubeconfig, self._context)
        api = self._api
        what = f"{method} lease {self.namespace}/{self.name}"
        try:
            params = await api.param_serialize(
                method=method,
                resource_path=path,
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = await api.call_api(*params, _request_timeout=self._timeout)
            await response.read()
            data = api.response_deserialize(response, {"200": "object", "201": "object"}).data
        except ApiException as exc:
            raise _error(exc, what) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__} {exc}".strip()) from exc
        if not isinstance(data, dict):
            raise PermanentError(f"{what}: the answer is not a Lease object")
        return data

    def _path(self, *, named: bool) -> str:
        path = _LEASES.format(namespace=self.namespace)
        return f"{path}/{self.name}" if named else path

    async def get(self) -> LeaseRecord | None:
        try:
            return _record(await self._request("GET", self._path(named=True)))
        except PermanentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status == 404:
                return None
            raise

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        body = self._body(record)
        body["metadata"].pop("resourceVersion", None)
        return _record(await self._request("POST", self._path(named=False), body))

    async def update(self, record: LeaseRecord) -> LeaseRecord:
        return _record(await self._request("PUT", self._path(named=True), self._body(record)))
