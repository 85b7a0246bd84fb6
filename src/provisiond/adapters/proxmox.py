"""Async facade over the blocking ``proxmoxer`` client.

Rules this module keeps (DESIGN §2, §6; SEMANTICS.md §1-3):
- proxmoxer is blocking: every call runs in a bounded thread pool, never on the event loop, and
  each worker thread has its own ``ProxmoxAPI`` (a requests Session is not shared across
  threads). The pool size is the cap on requests in flight (default 4; pveproxy has 3 workers).
- API tokens (preferred) or tickets (user + password; an expired ticket gets one re-login).
- Explicit (connect, read) timeouts; TLS verification on, optionally against a CA bundle.
- Booleans go out as ``1``/``0`` (PVE rejects ``True``); ``None`` values are dropped; ``sshkeys``
  is URL-encoded as PVE requires.
- Every call is reported to ``on_request(method, endpoint_template, code, seconds)`` — metrics
  get bounded labels (the template, never a VMID).
- Every mutating call (not GET) passes ``guard(method, endpoint_template)`` in its worker thread
  immediately before it is sent (leader election's fence, ``runtime.fence``): the guard may
  refuse by raising, and then nothing is sent. Checked there, not when the call is queued, since
  a call can wait for a worker behind slow reads.
- Failures become the core's exception tree (``core.pve_errors``), raised ``from`` the original;
  messages carry the endpoint template and PVE's reason, never the token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import proxmoxer
import requests

from provisiond.core.errors import AuthError, PermanentError, TransientError
from provisiond.core.pve_errors import error_for


class RequestObserver(Protocol):
    def __call__(self, method: str, endpoint: str, code: str, seconds: float) -> None: ...


Guard = Callable[[str, str], AbstractContextManager[None]]


@dataclass(frozen=True, slots=True)
class ProxmoxConnection:
    """Where and how to connect: an API token (preferred) or a user and password (tickets).

    ``secret`` (the token's secret, or the password) is never logged or put in messages.
    """

    url: str
    identity: str  # user@realm!tokenname for a token, user@realm for ticket auth
    secret: str
    verify: bool | str = True  # False, True, or a CA bundle path
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrent: int = 4

    @property
    def uses_token(self) -> bool:
        return "!" in self.identity

    def __repr__(self) -> str:
        return (
            f"ProxmoxConnection(url={self.url!r}, identity={self.identity!r}, "
            f"secret='**********', verify={self.verify!r})"
        )


def encode_params(params: Mapping[str, Any]) -> dict[str, str | int | float]:
    """Wire encoding PVE accepts: booleans as 0/1, no ``None``, ``sshkeys`` URL-encoded."""
    out: dict[str, str | int | float] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = 1 if value else 0
        elif key == "sshkeys":
            out[key] = quote(str(value), safe="")
        else:
            out[key] = value
    return out


def _reason(exc: proxmoxer.ResourceException) -> str:
    text = str(exc.content or exc.status_message or "")
    errors = exc.errors
    if isinstance(errors, dict) and errors and "errors" not in errors:
        details = "; ".join(f"{k}: {str(v).strip()}" for k, v in sorted(errors.items()))
        text = f"{text} ({details})"
    return text.strip()


class ProxmoxClient:
    """Async, bounded, instrumented access to one Proxmox VE API endpoint."""

    def __init__(
        self,
        conn: ProxmoxConnection,
        *,
        on_request: RequestObserver | None = None,
        clock: Callable[[], float] = time.perf_counter,
        guard: Guard | None = None,
    ) -> None:
        parts = urlsplit(conn.url)
        if parts.scheme != "https" or not parts.hostname:
            raise PermanentError(f"proxmox url must be https://host[:port], got {conn.url!r}")
        self._conn = conn
        self._host = parts.hostname
        self._port = parts.port or 8006
        self._on_request = on_request
        self._clock = clock
        self._guard = guard
        self._pool = ThreadPoolExecutor(
            max_workers=conn.max_concurrent, thread_name_prefix="proxmox"
        )
        self._local = threading.local()

    @property
    def identity(self) -> str:
        """Who the requests run as: the token id or the user (for messages)."""
        return self._conn.identity

    def _api(self) -> Any:
        """This worker thread's client (created, and for tickets logged in, on first use)."""
        api = getattr(self._local, "api", None)
        if api is None:
            common: dict[str, Any] = {
                "port": self._port,
                "verify_ssl": self._conn.verify,
                "timeout": (self._conn.connect_timeout, self._conn.read_timeout),
            }
            if self._conn.uses_token:
                user, _, token_name = self._conn.identity.partition("!")
                api = proxmoxer.ProxmoxAPI(
                    self._host,
                    user=user,
                    token_name=token_name,
                    token_value=self._conn.secret,
                    **common,
                )
            else:  # POST /access/ticket now; proxmoxer renews the ticket after an hour
                api = proxmoxer.ProxmoxAPI(
                    self._host, user=self._conn.identity, password=self._conn.secret, **common
                )
            self._local.api = api
        return api

    def _call(self, method: str, template: str, path: str, params: dict[str, Any]) -> Any:
        """Runs in a worker thread. A ticket the server no longer accepts (expired, or the
        server restarted) is replaced by one fresh login, once; tokens are never retried."""
        if method != "GET" and self._guard is not None:
            with self._guard(method, template):
                return self._call_logged_in(method, template, path, params)
        return self._call_logged_in(method, template, path, params)

    def _call_logged_in(self, method: str, template: str, path: str, params: dict[str, Any]) -> Any:
        try:
            return self._call_once(method, template, path, params)
        except AuthError:
            if self._conn.uses_token or getattr(self._local, "api", None) is None:
                raise
            self._local.api = None
            return self._call_once(method, template, path, params)

    def _call_once(self, method: str, template: str, path: str, params: dict[str, Any]) -> Any:
        started = self._clock()
        code = "error"
        try:
            resource = self._api()(path.lstrip("/"))
            if method == "GET":
                result = resource.get(**params)
            elif method == "POST":
                result = resource.post(**params)
            elif method == "PUT":
                result = resource.put(**params)
            else:
                result = resource.delete(**params)
            code = "200"
            return result
        except proxmoxer.ResourceException as exc:
            code = str(exc.status_code)
            raise error_for(exc.status_code, _reason(exc), context=f"{method} {template}") from exc
        except proxmoxer.AuthenticationError as exc:
            code = "401"
            self._local.api = None
            raise AuthError(f"{method} {template}: login as {self._conn.identity} failed") from exc
        except requests.exceptions.SSLError as exc:
            code = "tls"
            raise PermanentError(
                f"{method} {template}: TLS verification failed for {self._host} "
                "(set proxmox.ca_bundle, or fix the certificate)"
            ) from exc
        except requests.exceptions.Timeout as exc:
            code = "timeout"
            raise TransientError(f"{method} {template}: timed out") from exc
        except requests.exceptions.ConnectionError as exc:
            code = "connection"
            raise TransientError(
                f"{method} {template}: cannot connect to {self._host}:{self._port}"
            ) from exc
        finally:
            if self._on_request is not None:
                self._on_request(method, template, code, self._clock() - started)

    async def request(
        self,
        method: str,
        template: str,
        /,
        params: Mapping[str, Any] | None = None,
        **path: str | int,
    ) -> Any:
        """Call ``method template`` with the path variables filled in.

        ``template`` is the endpoint as PVE documents it (``/nodes/{node}/qemu/{vmid}/config``);
        it is also the metrics label.
        """
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise ValueError(f"unsupported method {method}")
        url_path = template.format(**{k: str(v) for k, v in path.items()})
        encoded = encode_params(params or {})
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._call, method, template, url_path, encoded
        )

    async def get(
        self, template: str, /, params: Mapping[str, Any] | None = None, **path: str | int
    ) -> Any:
        return await self.request("GET", template, params, **path)

    async def post(
        self, template: str, /, params: Mapping[str, Any] | None = None, **path: str | int
    ) -> Any:
        return await self.request("POST", template, params, **path)

    async def put(
        self, template: str, /, params: Mapping[str, Any] | None = None, **path: str | int
    ) -> Any:
        return await self.request("PUT", template, params, **path)

    async def delete(
        self, template: str, /, params: Mapping[str, Any] | None = None, **path: str | int
    ) -> Any:
        return await self.request("DELETE", template, params, **path)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
