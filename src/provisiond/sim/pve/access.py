"""Users, API tokens, roles and ACLs of the simulated cluster, and pveproxy's authentication.

- **Users and API tokens** from the topology (``spec.users``); a ``root@pam`` token without
  privilege separation always exists (``Access.admin_tokenid``), so the simulator's default
  client is a full administrator.
- **Roles and ACLs**: the built-in roles plus the topology's; ``roles_on`` is
  AccessControl.pm's ``roles`` walk of the ACL tree for one user or token.
- **Authentication**: an API token (``PVEAPIToken=…``), or a ticket cookie (``tickets.py``) with
  its CSRF token on writes; a failure is ``AuthFailureError`` (401 after ``auth_delay``).
  ``login`` is ``create_ticket``'s credential check.

The permission computation is ``permissions.Perms`` (``for_user``); the endpoint rules are
``rules.RULES``; ``tests/sim/test_pve_access.py`` compares the rules with the PVE 8.4 schema.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from provisiond.core import topology as topo
from provisiond.core.pve_privileges import BUILTIN_ROLES, PRIVILEGES
from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.permissions import ROOT, Perms
from provisiond.sim.pve.tickets import Tickets

AUTH_DELAY = 3.0  # pveproxy delays every 401 by 3 s

_TOKEN_RE = re.compile(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)")


class AuthFailureError(Exception):
    """A 401 from pveproxy's auth handler; ``reason`` is the HTTP reason phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cookie_value(header: str | None, name: str) -> str | None:
    """pve-http-server ``extract_auth_value``: ``<name>=<value>`` up to ``;``, URI-unescaped."""
    if not header:
        return None
    m = re.search(rf"(?:^|\s|;){re.escape(name)}=([^;]*)", header)
    return unquote(m.group(1)) if m and m.group(1) else None


@dataclass
class TokenEntry:
    secret: str
    privsep: bool = False


@dataclass
class UserEntry:
    password: str | None = None
    tokens: dict[str, TokenEntry] = field(default_factory=dict)


class Access:
    """Users, tokens, roles, ACLs and tickets of the simulated cluster (loop-thread owned)."""

    def __init__(
        self,
        spec: topo.TopologySpec,
        pool_members: Callable[[], Mapping[str, Iterable[int]]],
    ) -> None:
        self.users: dict[str, UserEntry] = {ROOT: UserEntry()}
        self.roles: dict[str, frozenset[str]] = dict(BUILTIN_ROLES)
        # path -> user or token id -> role -> propagate
        self.acl: dict[str, dict[str, dict[str, bool]]] = {}
        self.secrets: dict[str, str] = {}  # "user@realm!id" -> secret (every token)
        self.tickets = Tickets()
        self.auth_delay = AUTH_DELAY  # simulated seconds; the server scales it by time_scale
        self.pool_members = pool_members
        for user in spec.users:
            self.add_user(user.id, user.password)
            for tok in user.tokens:
                self.add_token(user.id, tok.id, privsep=tok.privsep, secret=tok.secret)
        for role in spec.roles:
            self.roles[role.id] = frozenset(role.privileges)
        for acl in spec.acls:
            self.set_acl(acl.path, acl.roles, (*acl.users, *acl.tokens), propagate=acl.propagate)
        self.admin_tokenid = self._admin_tokenid()

    # -- administration (topology, handle) -----------------------------------------------------
    def add_user(self, userid: str, password: str | None = None) -> None:
        entry = self.users.setdefault(userid, UserEntry())
        if password is not None:
            entry.password = password

    def add_token(
        self, userid: str, token: str, *, privsep: bool = False, secret: str | None = None
    ) -> str:
        """Create (or replace) ``userid!token``; returns ``user@realm!token=secret``."""
        self.add_user(userid)
        secret = secret or str(uuid.uuid4())
        self.users[userid].tokens[token] = TokenEntry(secret, privsep)
        self.secrets[f"{userid}!{token}"] = secret
        return f"{userid}!{token}={secret}"

    def add_role(self, name: str, privileges: Iterable[str]) -> None:
        privs = frozenset(privileges)
        unknown = privs - PRIVILEGES
        if unknown:
            raise ValueError(f"invalid privilege '{min(unknown)}'")
        self.roles[name] = privs

    def set_acl(
        self, path: str, roles: Iterable[str], ugids: Iterable[str], *, propagate: bool = True
    ) -> None:
        """PUT /access/acl: grant ``roles`` on ``path`` to users and tokens (full ids)."""
        node = self.acl.setdefault(path, {})
        for ugid in ugids:
            for role in roles:
                if role not in self.roles:
                    raise ValueError(f"role '{role}' does not exist")
                node.setdefault(ugid, {})[role] = propagate

    def _admin_tokenid(self) -> str:
        for name, tok in self.users[ROOT].tokens.items():
            if not tok.privsep:
                return f"{ROOT}!{name}"
        name = "provisiond" if "provisiond" not in self.users[ROOT].tokens else "provisiond-sim"
        self.add_token(ROOT, name)
        return f"{ROOT}!{name}"

    def login(self, username: str, password: str) -> str:
        """``create_ticket``'s credential check: a password, or a valid ticket of the same user
        (root@pam's ticket renews anyone's). Returns the user; any failure is 401
        ``authentication failure`` without details."""
        ticket_user = self.tickets.verify(password)
        user = self.users.get(username)
        if user is not None and ticket_user in (username, ROOT):
            return username
        if (
            user is None
            or user.password is None
            or not hmac.compare_digest(user.password.encode(), password.encode())
        ):
            raise PveError("authentication failure", status=401)
        return username

    # -- request authentication ------------------------------------------------------------
    def token_in(self, authorization: str | None) -> str | None:
        m = _TOKEN_RE.search(authorization or "")
        return m.group(1).strip() if m else None

    def authenticate(
        self, method: str, authorization: str | None, cookie: str | None, csrf: str | None
    ) -> str:
        """pveproxy's auth handler: the user or token id, else ``AuthFailureError``."""
        token = self.token_in(authorization)
        ticket = cookie_value(cookie, "PVEAuthCookie") or cookie_value(
            authorization, "PVEAuthCookie"
        )
        if not token and not ticket:
            raise AuthFailureError("No ticket")
        if token:
            tokenid, sep, secret = token.rpartition("=")
            if not sep or self.secrets.get(tokenid) != secret:
                raise AuthFailureError("Authentication failed!")
            return tokenid  # tokens skip the CSRF check
        assert ticket is not None
        user = self.tickets.verify(ticket)
        if user is None:
            raise AuthFailureError("Authentication failed!")
        if method != "GET" and not self.tickets.verify_csrf(user, csrf):
            raise AuthFailureError("Permission denied - invalid csrf token")
        return user

    # -- permissions -----------------------------------------------------------------------
    def for_user(self, authid: str) -> Perms:
        return Perms(self, authid)

    def roles_on(self, ugid: str, path: str) -> dict[str, bool]:
        """AccessControl.pm ``roles`` for a user or a privilege-separated token: walking the
        path, each level's applicable entries (own level, or propagated from above) replace
        what was found above; ``NoAccess`` wins."""
        parts = path.strip("/").split("/") if path != "/" else []
        levels = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        roles: dict[str, bool] = {}
        for i, level in enumerate(levels):
            entry = self.acl.get(level, {}).get(ugid)
            if not entry:
                continue
            final = i == len(levels) - 1
            new = {role: prop for role, prop in entry.items() if final or prop}
            if new:
                roles = new
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles
