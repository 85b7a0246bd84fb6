"""Login tickets and CSRF tokens as pve-common ``Ticket.pm`` makes and checks them.

A ticket is ``PVE:<user>:<8 HEX time>::<base64 signature>``, its CSRF token
``<8 HEX time>:<base64 HMAC-SHA256>``. The signature is a keyed 256-byte stand-in for PVE's
2048-bit RSA signature (same length, verified the same way). Both are valid from 5 minutes
before to ``lifetime`` (2 h) after issue, on this object's clock — ``expire`` moves that clock
past every ticket issued so far. The keys live only in memory, so a restarted simulator forgets
every ticket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import quote, unquote

TICKET_LIFETIME = 2 * 3600.0  # AccessControl.pm $ticket_lifetime
AUTH_GRACE = 300  # $auth_graceperiod: tickets from up to 5 min "in the future" are fine

_TICKET_RE = re.compile(r"^PVE:([^:\s]+):([0-9A-F]{8})::([A-Za-z0-9+/=]+)$")
_CSRF_RE = re.compile(r"^([0-9A-F]{8}):(\S+)$")


class Tickets:
    """Issues and verifies tickets and CSRF tokens (loop-thread owned)."""

    def __init__(self) -> None:
        self.lifetime = TICKET_LIFETIME
        self.clock_offset = 0.0
        self._key = secrets.token_bytes(32)
        self._csrf_key = secrets.token_bytes(32)

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def expire(self) -> None:
        """Every ticket and CSRF token issued so far is past its lifetime from now on."""
        self.clock_offset += self.lifetime + AUTH_GRACE + 1

    def _sign(self, plain: str) -> bytes:
        return b"".join(
            hmac.new(self._key, f"{i}:{plain}".encode(), hashlib.sha256).digest() for i in range(8)
        )

    def _fresh(self, stamp: str) -> bool:
        age = self.now() - int(stamp, 16)
        return -AUTH_GRACE < age < self.lifetime

    def issue(self, userid: str) -> tuple[str, str]:
        """(ticket, CSRFPreventionToken) for ``userid``."""
        stamp = f"{self.now():08X}"
        plain = f"PVE:{quote(userid, safe='@!')}:{stamp}"
        ticket = f"{plain}::{base64.b64encode(self._sign(plain)).decode()}"
        return ticket, self._csrf(userid, stamp)

    def _csrf(self, userid: str, stamp: str) -> str:
        mac = hmac.new(self._csrf_key, f"{stamp}:{userid}".encode(), hashlib.sha256).digest()
        return f"{stamp}:{base64.b64encode(mac).decode().rstrip('=')}"

    def verify(self, ticket: str) -> str | None:
        """The ticket's user, or None when it is forged, malformed or expired."""
        m = _TICKET_RE.match(ticket)
        if m is None:
            return None
        plain = ticket.split("::", 1)[0]
        try:
            sig = base64.b64decode(m.group(3), validate=True)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(plain)) or not self._fresh(m.group(2)):
            return None
        return unquote(m.group(1))

    def verify_csrf(self, userid: str, token: str | None) -> bool:
        m = _CSRF_RE.match(token or "")
        if m is None:
            return False
        return hmac.compare_digest(self._csrf(userid, m.group(1)), m.group(0)) and self._fresh(
            m.group(1)
        )
