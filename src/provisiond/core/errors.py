"""The one exception tree of provisiond.

Retryability lives in the type, not in the call site (STYLE.md §4)::

    ProvisiondError
    ├── TransientError(retry_after)   retry later: lock held, timeout, connection, 409, 429, 503
    │   ├── LockedError(lock)         locked (backup, clone, migrate…): wait, never unlock
    │   ├── UnclassifiedError         unknown 500: ``max_retries`` retries, then permanent
    │   └── UnreachableError          the API endpoint itself cannot be reached (refused, DNS…)
    ├── PermanentError                retrying will not help: permission, parameter, root-only
    │   ├── AuthError                 401/403: never retried (pveproxy delays every 401 by 3 s)
    │   └── TLSError                  the server's certificate is not trusted (CA, host name)
    ├── SpecError(issues)             a fleet/topology document is invalid; carries every issue
    └── ConfigError                   the daemon's own settings are unusable

``ACCESS_ERRORS`` — unreachable, TLS, authentication — say the daemon cannot talk to Proxmox at
all, whatever it asked: a one-shot command fails with their one-line message (exit 1), the
daemon waits for them on a backoff of their own instead of planning from an empty observation.

Adapters map library exceptions onto this tree with ``raise … from exc``; messages never carry
secrets (tokens, passwords): adapters redact before raising.
"""

from __future__ import annotations

from dataclasses import dataclass


class ProvisiondError(Exception):
    """Base of every error provisiond raises on purpose."""


class TransientError(ProvisiondError):
    """The operation may succeed if retried later (``retry_after`` seconds is a hint)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LockedError(TransientError):
    """The target object holds a lock; requeue, never unlock, not counted as a failure."""

    def __init__(self, message: str, *, lock: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.lock = lock


class UnclassifiedError(TransientError):
    """A server error whose message we do not recognise: retried a couple of times only."""

    max_retries = 2


class PermanentError(ProvisiondError):
    """Retrying the same call will not help; fail the action and back the object off."""


class AuthError(PermanentError):
    """Authentication or authorisation failed (401/403). Never retried."""


class UnreachableError(TransientError):
    """The API endpoint could not be reached (connection refused, unknown host, timed out)."""


class TLSError(PermanentError):
    """TLS failed: the certificate is not trusted by the CA bundle, or the CA file is unusable."""


ACCESS_ERRORS: tuple[type[ProvisiondError], ...] = (UnreachableError, TLSError, AuthError)


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a spec document: where it is and what is wrong.

    ``path`` is the field path inside the document (``spec.pools[1].vms[0].vmid``); ``line`` is
    1-based, or ``None`` when the problem concerns the whole file.
    """

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ProvisiondError):
    """One or more spec documents are invalid. ``issues`` lists every problem found."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid spec")


class ConfigError(ProvisiondError):
    """The daemon's settings are unusable (missing secret file, bad URL, …)."""
