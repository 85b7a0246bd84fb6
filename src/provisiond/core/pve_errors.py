"""What a Proxmox VE error means for retrying: classified by HTTP status *and* message.

Proxmox answers almost every semantic error with HTTP 500 and the message as the reason phrase
(``../shared/proxmox/SEMANTICS.md`` §1, §6), so the status alone decides little. The table below
is data: each row is a message pattern and what it means. Rows are checked in order; the first
match wins. An unknown 500 is ``UNCLASSIFIED`` (retried at most twice, then permanent for the
cycle); 401/403 are never retried (pveproxy delays every 401 by 3 s) — decided by the status
before any message row, so a 403 whose text happens to say "try again" stays a 403.
"""

from __future__ import annotations

import re
from enum import StrEnum

from provisiond.core.errors import (
    AuthError,
    LockedError,
    PermanentError,
    ProvisiondError,
    TransientError,
    UnclassifiedError,
)


class Fault(StrEnum):
    LOCKED = "locked"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AUTH = "auth"
    UNCLASSIFIED = "unclassified"


_LOCKED = re.compile(r"\bis locked \((?P<lock>[a-z-]+)\)")

# (pattern, fault), first match wins. Sources: SEMANTICS.md sections in the comments.
_MESSAGES: tuple[tuple[re.Pattern[str], Fault], ...] = tuple(
    (re.compile(p, re.IGNORECASE), f)
    for p, f in (
        (r"got timeout", Fault.TRANSIENT),  # flock timeouts (§6 locks)
        (r"checksum mismatch", Fault.TRANSIENT),  # digest race: re-read and retry (§5)
        (r"hostname lookup .* failed", Fault.TRANSIENT),  # proxyto an unreachable node (§1)
        (r"connection (refused|reset|timed out)|connect to .* failed", Fault.TRANSIENT),
        (r"no route to host|temporarily unavailable|try again", Fault.TRANSIENT),
        (r"^Permission check failed", Fault.AUTH),  # 403 (§1), also when sent as a 500
        (r"only root", Fault.PERMANENT),  # hostpci raw, skiplock, force (§5, §6)
        (r"^Parameter verification failed", Fault.PERMANENT),  # 400 (§1)
        (r"does not exist", Fault.PERMANENT),  # VM/config/mapping gone (§5)
        (r"already exists", Fault.PERMANENT),  # VMID taken: re-observe, never re-POST (§7)
        (r"not supported|not allowed|can't|cannot|unable to|invalid", Fault.PERMANENT),
        (r"not implemented", Fault.PERMANENT),  # 501 (§1)
    )
)


def classify(status: int, message: str) -> Fault:
    """Classify a failed Proxmox API call by its HTTP status and its message."""
    if status in (401, 403):
        return Fault.AUTH
    if _LOCKED.search(message):
        return Fault.LOCKED
    if status in (408, 409, 425, 429, 502, 503, 504) or status >= 595:
        return Fault.TRANSIENT  # 595/596: pveproxy could not reach the node
    for pattern, fault in _MESSAGES:
        if pattern.search(message):
            return fault
    if 400 <= status < 500:
        return Fault.PERMANENT
    return Fault.UNCLASSIFIED


def error_for(status: int, message: str, *, context: str = "") -> ProvisiondError:
    """The core exception for a failed call; ``context`` is prefixed (``POST /nodes/…``)."""
    text = f"{context}: {status} {message}" if context else f"{status} {message}"
    fault = classify(status, message)
    if fault is Fault.LOCKED:
        m = _LOCKED.search(message)
        assert m is not None  # classify() matched the same pattern
        return LockedError(text, lock=m.group("lock"))
    return _EXCEPTIONS[fault](text)


_EXCEPTIONS: dict[Fault, type[ProvisiondError]] = {
    Fault.TRANSIENT: TransientError,
    Fault.AUTH: AuthError,
    Fault.PERMANENT: PermanentError,
    Fault.UNCLASSIFIED: UnclassifiedError,
}
