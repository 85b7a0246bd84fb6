"""Async facade over the blocking ``proxmoxer`` client.

Rules this module keeps (DESIGN §2, §6; SEMANTICS.md §1-3):
- proxmoxer is blocking: every call runs on a thread, never on the event loop, holding one of
  at most ``max_concurrent`` ``ProxmoxAPI`` clients (a requests Session is used by one thread at
  a time). That cap bounds the requests in flight (default 4; pveproxy has 3 workers).
- The threads are daemon threads: a request whose caller went away (stop while Proxmox hangs)
  is abandoned, and the process exits without waiting up to ``read_timeout`` for its answer.
- API tokens (preferred) or tickets (user + password; an expired ticket gets one re-login).
- Explicit (connect, read) timeouts; TLS verification on, optionally against a CA bundle.
- Booleans go out as ``1``/``0`` (PVE rejects ``True``); ``None`` values are dropped; ``sshkeys``
  is URL-encoded as PVE requires.
- Every call is reported to ``on_request(method, endpoint_template, code, seconds)`` — metrics
  get bounded labels (the template, never a VMID).
- Every mutating call (not GET) passes ``guard(method, endpoint_template)`` on its request thread
  immediately before it is sent (leader election's fence, ``runtime.fence``): the guard may
  refuse by raising, and then nothing is sent. Checked there, not when the call is queued, since
  a call can wait for a slot (``max_concurrent``) behind slow reads. A call whose caller
  gave up still runs to its answer inside the guard (daemon threads), so the fence's in-flight
  count stays true.
- Failures become the core's exception tree (``core.pve_errors``), raised ``from`` the original;
  messages carry the endpoint template and PVE's reason, never the token secret.
- Failing to talk to the API at all is one of ``core.errors.ACCESS_ERRORS`` with a one-line
  message naming what failed and what to check: ``UnreachableError`` (refused, unknown host,
  connect timeout), ``TLSError`` (certificate not trusted, CA file unusable), ``AuthError``
  (401: the token id/secret or the user/password).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import proxmoxer
import requests

from provisiond.core.errors import (
    AuthError,
    PermanentError,
    TLSError,
    TransientError,
    UnreachableError,
)
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


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: requests wraps urllib3 wraps the socket or ssl error."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _unreachable(conn: ProxmoxConnection, exc: BaseException) -> UnreachableError:
    root = _root(exc)
    if isinstance(root, ConnectionRefusedError):
        why, check = "connection refused", "is the URL right?"
    elif isinstance(root, socket.gaierror):
        why, check = "host name not found", "is the URL right?"
    elif isinstance(root, TimeoutError) or isinstance(exc, requests.exceptions.ConnectTimeout):
        why, check = "connection timed out", "is the host up and the port open?"
    else:
        why = (root.strerror if isinstance(root, OSError) else None) or type(root).__name__
        check = "is the host up and the URL right?"
    return UnreachableError(f"cannot reach {conn.url}: {why.lower()} — {check}")


def _tls(conn: ProxmoxConnection, exc: BaseException) -> TLSError:
    root = _root(exc)
    ca = conn.verify if isinstance(conn.verify, str) else None
    trusted_by = f"ca_bundle {ca}" if ca else "the system CAs"
    if isinstance(root, ssl.SSLCertVerificationError):
        detail = str(root.verify_message or "")
        if "mismatch" in detail or "not valid for" in detail:
            return TLSError(
                f"TLS: the certificate of {conn.url} is not valid for that host name — "
                "use the name the certificate was issued for"
            )
        hint = "is it the cluster's CA?" if ca else "set proxmox.ca_bundle to the cluster's CA"
        return TLSError(f"TLS: certificate of {conn.url} not trusted by {trusted_by} — {hint}")
    if ca and isinstance(root, ssl.SSLError):
        return TLSError(f"TLS: ca_bundle {ca} holds no usable certificate — is it a PEM file?")
    if ca and not isinstance(exc, requests.exceptions.RequestException):
        return TLSError(f"TLS: cannot read ca_bundle {ca} — does the file exist?")
    return TLSError(f"TLS: handshake with {conn.url} failed — is it the Proxmox API port?")


@dataclass(slots=True)
class _Session:
    """One ``ProxmoxAPI`` (built, and for tickets logged in, on first use), used by one thread at
    a time."""

    api: Any = field(default=None)


def _settle(done: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(value)


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
        self._slots = asyncio.Semaphore(conn.max_concurrent)
        self._idle: list[_Session] = []
        self._idle_lock = threading.Lock()

    @property
    def identity(self) -> str:
        """Who the requests run as: the token id or the user (for messages)."""
        return self._conn.identity

    def _api(self, session: _Session) -> Any:
        """The session's client (created, and for tickets logged in, on first use)."""
        api = session.api
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
            session.api = api
        return api

    def _call(self, method: str, template: str, path: str, params: dict[str, Any]) -> Any:
        """Runs on a request thread. A ticket the server no longer accepts (expired, or the
        server restarted) is replaced by one fresh login, once; tokens are never retried."""
        if method != "GET" and self._guard is not None:
            with self._guard(method, template):
                return self._call_in_session(method, template, path, params)
        return self._call_in_session(method, template, path, params)

    def _call_in_session(
        self, method: str, template: str, path: str, params: dict[str, Any]
    ) -> Any:
        with self._idle_lock:
            session = self._idle.pop() if self._idle else _Session()
        try:
            try:
                return self._call_once(session, method, template, path, params)
            except AuthError:
                if self._conn.uses_token or session.api is None:
                    raise
                session.api = None
                return self._call_once(session, method, template, path, params)
        finally:
            with self._idle_lock:
                self._idle.append(session)

    def _call_once(
        self, session: _Session, method: str, template: str, path: str, params: dict[str, Any]
    ) -> Any:
        started = self._clock()
        code = "error"
        try:
            resource = self._api(session)(path.lstrip("/"))
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
            if exc.status_code == 401:
                raise self._auth_failed() from exc
            raise error_for(exc.status_code, _reason(exc), context=f"{method} {template}") from exc
        except proxmoxer.AuthenticationError as exc:
            code = "401"
            session.api = None
            raise self._auth_failed() from exc
        except requests.exceptions.SSLError as exc:
            code = "tls"
            raise _tls(self._conn, exc) from exc
        except requests.exceptions.ConnectTimeout as exc:
            code = "timeout"
            raise _unreachable(self._conn, exc) from exc
        except requests.exceptions.Timeout as exc:
            code = "timeout"
            raise TransientError(
                f"{method} {template}: no answer within {self._conn.read_timeout:g} s"
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            code = "connection"
            raise _unreachable(self._conn, exc) from exc
        except OSError as exc:  # requests: "Could not find a suitable TLS CA certificate bundle"
            code = "tls"
            raise _tls(self._conn, exc) from exc
        finally:
            if self._on_request is not None:
                self._on_request(method, template, code, self._clock() - started)

    def _auth_failed(self) -> AuthError:
        if self._conn.uses_token:
            return AuthError(
                f"authentication failed for token {self._conn.identity} — check token id and secret"
            )
        return AuthError(
            f"authentication failed for user {self._conn.identity} — check user and password"
        )

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
        async with self._slots:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Any] = loop.create_future()

            def work() -> None:
                value: Any = None
                error: BaseException | None = None
                try:
                    value = self._call(method, template, url_path, encoded)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                    error = exc
                # The loop may be closed (the caller stopped): nobody waits for this answer.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, done, value, error)

            threading.Thread(target=work, name="proxmox-request", daemon=True).start()
            return await done

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
        """Drop the idle clients. Requests under way are not waited for (daemon threads)."""
        with self._idle_lock:
            self._idle.clear()
