"""Authentication and permissions as pve-access-control and pveproxy do them.

- **Users and API tokens** from the topology (``spec.users``); a ``root@pam`` token without
  privilege separation always exists (``Access.admin_token``), so the simulator's default client
  is a full administrator.
- **Tickets** (``POST /access/ticket``): ``PVE:<user>:<8 HEX time>::<base64 signature>`` and the
  CSRF token ``<8 HEX time>:<base64 HMAC-SHA256>`` (pve-common ``Ticket.pm``). The signature is a
  keyed 256-byte stand-in for PVE's 2048-bit RSA signature (same length, verified the same way).
  Valid from 5 minutes before to ``ticket_lifetime`` (2 h) after issue, on the simulator's access
  clock — ``expire_tickets`` moves that clock past every ticket issued so far.
- **Permissions** (``RPCEnvironment.pm`` ``permissions``/``compile_acl_path``): roles along the
  ACL path, a deeper entry replacing the roles from above, propagation, ``NoAccess``; VMs in a
  pool get the pool's roles on ``/vms/<vmid>`` (never propagated, never trumping an explicit
  ``NoAccess``); a privilege-separated token gets the intersection of its own privileges and its
  user's, a token without separation exactly its user's; ``root@pam`` has everything. Groups and
  realms other than the user id's are not simulated.
- **The permission rule of each endpoint** (``RULES``), as the schema's ``permissions`` says;
  ``tests/sim/test_pve_access.py`` compares the table with the PVE 8.4 schema.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

from provisiond.core import topology as topo
from provisiond.core.pve_privileges import BUILTIN_ROLES, PRIVILEGES
from provisiond.sim.pve.errors import PveError

TICKET_LIFETIME = 2 * 3600.0  # AccessControl.pm $ticket_lifetime
AUTH_GRACE = 300  # $auth_graceperiod: tickets from up to 5 min "in the future" are fine
AUTH_DELAY = 3.0  # pveproxy delays every 401 by 3 s
ROOT = "root@pam"

_TOKEN_RE = re.compile(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)")
_TICKET_RE = re.compile(r"^PVE:([^:\s]+):([0-9A-F]{8})::([A-Za-z0-9+/=]+)$")
_CSRF_RE = re.compile(r"^([0-9A-F]{8}):(\S+)$")


class AuthFailureError(Exception):
    """A 401 from pveproxy's auth handler; ``reason`` is the HTTP reason phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def perm_error(what: str | None = None) -> PveError:
    """pve-common ``raise_perm_exc``: 403 ``Permission check failed[ (<what>)]``."""
    return PveError("Permission check failed" + (f" ({what})" if what else ""), status=403)


def cookie_value(header: str | None, name: str) -> str | None:
    """pve-http-server ``extract_auth_value``: ``<name>=<value>`` up to ``;``, URI-unescaped."""
    if not header:
        return None
    m = re.search(rf"(?:^|\s|;){re.escape(name)}=([^;]*)", header)
    return unquote(m.group(1)) if m and m.group(1) else None


# -- endpoint permission rules -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Perm:
    """``["perm", path, [privs], any => 1, require_param => p]``."""

    path: str
    privs: tuple[str, ...]
    any: bool = False
    require_param: str | None = None

    def schema(self) -> list[object]:
        out: list[object] = ["perm", self.path, list(self.privs)]
        if self.any:
            out += ["any", 1]
        if self.require_param is not None:
            out += ["require_param", self.require_param]
        return out


@dataclass(frozen=True, slots=True)
class Both:
    """``["and", …]``: every check, the first failure raises its own text."""

    checks: tuple[Check, ...]

    def schema(self) -> list[object]:
        return ["and", *(c.schema() for c in self.checks)]


@dataclass(frozen=True, slots=True)
class Either:
    """``["or", …]``: one must pass, else a bare ``Permission check failed``."""

    checks: tuple[Check, ...]

    def schema(self) -> list[object]:
        return ["or", *(c.schema() for c in self.checks)]


Check = Perm | Both | Either


@dataclass(frozen=True, slots=True)
class Rule:
    """A method's ``permissions`` (``user`` all/world or a ``check``) and ``allowtoken``."""

    check: Check | None = None
    user: Literal["all", "world"] | None = None
    allowtoken: bool = True


ALL = Rule(user="all")
_Q = "/nodes/{node}/qemu/{vmid}"
_VM_CONFIG = (
    "VM.Config.Disk",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.HWType",
    "VM.Config.Options",
    "VM.Config.Cloudinit",
)


def _vm(*privs: str, any_: bool = False) -> Rule:
    return Rule(Perm("/vms/{vmid}", privs, any_))


def _root(*privs: str, any_: bool = False) -> Rule:
    return Rule(Perm("/", privs, any_))


RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/version"): ALL,
    ("GET", "/access/permissions"): ALL,
    ("GET", "/access/ticket"): Rule(user="world"),
    ("POST", "/access/ticket"): Rule(user="world", allowtoken=False),
    ("GET", "/cluster/resources"): ALL,
    ("GET", "/cluster/nextid"): ALL,
    ("GET", "/cluster/status"): _root("Sys.Audit"),
    ("GET", "/cluster/tasks"): ALL,
    ("GET", "/cluster/mapping/pci"): ALL,
    ("POST", "/cluster/mapping/pci"): Rule(Perm("/mapping/pci", ("Mapping.Modify",))),
    ("GET", "/cluster/mapping/pci/{id}"): Rule(
        Either(
            tuple(
                Perm("/mapping/pci/{id}", (p,))
                for p in ("Mapping.Use", "Mapping.Modify", "Mapping.Audit")
            )
        )
    ),
    ("GET", "/cluster/ha/resources"): _root("Sys.Audit"),
    ("POST", "/cluster/ha/resources"): _root("Sys.Console"),
    ("GET", "/cluster/ha/resources/{sid}"): _root("Sys.Audit"),
    ("PUT", "/cluster/ha/resources/{sid}"): _root("Sys.Console"),
    ("DELETE", "/cluster/ha/resources/{sid}"): _root("Sys.Console"),
    ("POST", "/cluster/ha/resources/{sid}/migrate"): _root("Sys.Console"),
    ("POST", "/cluster/ha/resources/{sid}/relocate"): _root("Sys.Console"),
    ("GET", "/cluster/ha/groups"): _root("Sys.Audit"),
    ("GET", "/cluster/ha/status/current"): _root("Sys.Audit"),
    ("GET", "/pools"): ALL,
    ("GET", "/nodes"): ALL,
    ("GET", "/nodes/{node}/status"): Rule(Perm("/nodes/{node}", ("Sys.Audit",))),
    ("GET", "/nodes/{node}/hardware/pci"): _root("Sys.Audit", "Sys.Modify", any_=True),
    ("GET", "/nodes/{node}/storage"): ALL,
    ("GET", "/nodes/{node}/tasks"): ALL,
    ("GET", "/nodes/{node}/tasks/{upid}/status"): ALL,
    ("GET", "/nodes/{node}/tasks/{upid}/log"): ALL,
    ("GET", "/nodes/{node}/qemu"): ALL,
    ("POST", "/nodes/{node}/qemu"): ALL,  # VM.Allocate etc. are checked in the handler
    ("GET", f"{_Q}/config"): _vm("VM.Audit"),
    ("PUT", f"{_Q}/config"): _vm(*_VM_CONFIG, any_=True),
    ("POST", f"{_Q}/config"): _vm(*_VM_CONFIG, any_=True),
    ("GET", f"{_Q}/pending"): _vm("VM.Audit"),
    ("GET", f"{_Q}/status/current"): _vm("VM.Audit"),
    ("POST", f"{_Q}/status/start"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/stop"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/shutdown"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/reboot"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/reset"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/suspend"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/status/resume"): _vm("VM.PowerMgmt"),
    ("POST", f"{_Q}/clone"): Rule(
        Both(
            (
                Perm("/vms/{vmid}", ("VM.Clone",)),
                Either(
                    (
                        Perm("/vms/{newid}", ("VM.Allocate",)),
                        Perm("/pool/{pool}", ("VM.Allocate",), require_param="pool"),
                    )
                ),
            )
        )
    ),
    ("POST", f"{_Q}/template"): _vm("VM.Allocate"),
    ("DELETE", _Q): _vm("VM.Allocate"),
    ("PUT", f"{_Q}/resize"): _vm("VM.Config.Disk"),
    ("GET", f"{_Q}/migrate"): _vm("VM.Migrate"),
    ("POST", f"{_Q}/migrate"): _vm("VM.Migrate"),
    ("GET", f"{_Q}/snapshot"): _vm("VM.Audit"),
    ("POST", f"{_Q}/snapshot"): _vm("VM.Snapshot"),
    ("DELETE", f"{_Q}/snapshot/{{snapname}}"): _vm("VM.Snapshot"),
    ("GET", f"{_Q}/snapshot/{{snapname}}/config"): _vm(
        "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit", any_=True
    ),
    ("POST", f"{_Q}/snapshot/{{snapname}}/rollback"): _vm(
        "VM.Snapshot", "VM.Snapshot.Rollback", any_=True
    ),
}


# -- users, tokens, ACLs -----------------------------------------------------------------------


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
        self.ticket_lifetime = TICKET_LIFETIME
        self.auth_delay = AUTH_DELAY  # simulated seconds; the server scales it by time_scale
        self.clock_offset = 0.0
        self.pool_members = pool_members
        self._key = secrets.token_bytes(32)
        self._csrf_key = secrets.token_bytes(32)
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

    # -- tickets ---------------------------------------------------------------------------
    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def expire_tickets(self) -> None:
        """Every ticket and CSRF token issued so far is past its lifetime from now on."""
        self.clock_offset += self.ticket_lifetime + AUTH_GRACE + 1

    def _sign(self, plain: str) -> bytes:
        return b"".join(
            hmac.new(self._key, f"{i}:{plain}".encode(), hashlib.sha256).digest() for i in range(8)
        )

    def _fresh(self, stamp: str) -> bool:
        age = self.now() - int(stamp, 16)
        return -AUTH_GRACE < age < self.ticket_lifetime

    def issue_ticket(self, userid: str) -> tuple[str, str]:
        """(ticket, CSRFPreventionToken) for ``userid``."""
        stamp = f"{self.now():08X}"
        plain = f"PVE:{quote(userid, safe='@!')}:{stamp}"
        ticket = f"{plain}::{base64.b64encode(self._sign(plain)).decode()}"
        return ticket, self._csrf(userid, stamp)

    def _csrf(self, userid: str, stamp: str) -> str:
        mac = hmac.new(self._csrf_key, f"{stamp}:{userid}".encode(), hashlib.sha256).digest()
        return f"{stamp}:{base64.b64encode(mac).decode().rstrip('=')}"

    def verify_ticket(self, ticket: str) -> str | None:
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

    def login(self, username: str, password: str) -> str:
        """``create_ticket``'s credential check: a password, or a valid ticket of the same user
        (root@pam's ticket renews anyone's). Returns the user; any failure is 401
        ``authentication failure`` without details."""
        ticket_user = self.verify_ticket(password)
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
        user = self.verify_ticket(ticket)
        if user is None:
            raise AuthFailureError("Authentication failed!")
        if method != "GET" and not self.verify_csrf(user, csrf):
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


class Perms:
    """One request's view of the ACLs (RPCEnvironment's per-request ACL cache)."""

    def __init__(self, access: Access, authid: str) -> None:
        self.access = access
        self.authid = authid
        self._privs: dict[tuple[str, str], dict[str, int]] = {}
        self._pool_roles: dict[str, dict[str, set[str]]] = {}
        user, _, token = authid.partition("!")
        info = access.users[ROOT].tokens.get(token) if user == ROOT and token else None
        # root@pam, or a root@pam token without separation: every privilege everywhere
        self.everything = authid == ROOT or (info is not None and not info.privsep)

    @property
    def is_root(self) -> bool:
        return self.authid == ROOT

    def _pool_roles_of(self, ugid: str) -> dict[str, set[str]]:
        cached = self._pool_roles.get(ugid)
        if cached is None:
            cached = {}
            for pool, vmids in self.access.pool_members().items():
                roles = self.access.roles_on(ugid, f"/pool/{pool}")
                if roles:
                    for vmid in vmids:
                        cached.setdefault(f"/vms/{vmid}", set()).update(roles)
            self._pool_roles[ugid] = cached
        return cached

    def _compile(self, ugid: str, path: str) -> dict[str, bool]:
        roles = self.access.roles_on(ugid, path)
        pool_roles = self._pool_roles_of(ugid).get(path)
        if pool_roles and "NoAccess" not in roles:
            if "NoAccess" in pool_roles:
                roles = {"NoAccess": False}  # a pool's NoAccess trumps a regular ACL
            else:
                for role in pool_roles:
                    roles.setdefault(role, False)  # pool-derived roles never propagate
        privs: dict[str, bool] = {}
        for role, propagate in roles.items():
            for priv in self.access.roles.get(role, ()):
                privs[priv] = privs.get(priv, False) or propagate
        return privs

    def privileges(self, path: str, authid: str | None = None) -> dict[str, int]:
        """``RPCEnvironment::permissions``: privilege -> propagate flag (0/1) on ``path``."""
        who = self.authid if authid is None else authid
        key = (who, path)
        cached = self._privs.get(key)
        if cached is not None:
            return cached
        out: dict[str, int]
        user, sep, token = who.partition("!")
        if who == ROOT:
            out = dict.fromkeys(PRIVILEGES, 1)
        elif sep:
            entry = self.access.users.get(user)
            info = entry.tokens.get(token) if entry is not None else None
            if info is None:
                out = {}
            elif not info.privsep:
                out = self.privileges(path, user)
            else:
                own = self.privileges(path, user)
                out = {
                    p: int(bool(own[p]) and prop)
                    for p, prop in self._compile(who, path).items()
                    if p in own
                }
        else:
            out = {p: int(prop) for p, prop in self._compile(who, path).items()}
        self._privs[key] = out
        return out

    def has(self, path: str, privs: Iterable[str], *, any_: bool = False) -> bool:
        if self.everything:
            return True
        have = self.privileges(path)
        wanted = list(privs)
        return any(p in have for p in wanted) if any_ else all(p in have for p in wanted)

    def check(self, path: str, privs: Iterable[str], *, any_: bool = False) -> None:
        """``check``/``check_any``: 403 ``Permission check failed (<path>, <priv>[|…])``."""
        if self.everything:
            return
        have = self.privileges(path)
        wanted = list(privs)
        if any_:
            if not any(p in have for p in wanted):
                raise perm_error(f"{path}, {'|'.join(wanted)}")
            return
        for priv in wanted:
            if priv not in have:
                raise perm_error(f"{path}, {priv}")

    def check_vm(
        self, vmid: int, pool: str | None, privs: Iterable[str], *, any_: bool = False
    ) -> None:
        """``check_vm_perm``: the pool's ACL (when a pool is given) or ``/vms/<vmid>``."""
        wanted = list(privs)
        if pool is not None and self.has(f"/pool/{pool}", wanted, any_=any_):
            return
        self.check(f"/vms/{vmid}", wanted, any_=any_)

    def effective(self) -> dict[str, dict[str, int]]:
        """``get_effective_permissions``: every top-level path, every ACL path, every pool
        member's ``/vms/<vmid>``; paths without any privilege are left out."""
        paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
        paths |= set(self.access.acl)
        for vmids in self.access.pool_members().values():
            paths |= {f"/vms/{vmid}" for vmid in vmids}
        out = {}
        for path in sorted(paths):
            privs = self.privileges(path)
            if privs:
                out[path] = dict(sorted(privs.items()))
        return out

    def capabilities(self) -> dict[str, dict[str, int]]:
        """``compute_api_permission``: the ``cap`` object a ticket login returns (the GUI's
        per-category privilege summary)."""
        categories = {
            "vms": r"VM\.|Permissions\.Modify",
            "access": r"(User|Group)\.|Permissions\.Modify",
            "storage": r"Datastore\.|Permissions\.Modify",
            "nodes": r"Sys\.|Permissions\.Modify",
            "sdn": r"SDN\.|Permissions\.Modify",
            "dc": r"Sys\.Audit|Sys\.Modify|SDN\.",
            "mapping": r"Mapping\.|Permissions\.Modify",
        }
        out: dict[str, dict[str, int]] = {name: {} for name in categories}
        required = ["/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping"]
        for path in dict.fromkeys([*required, *self.access.acl]):
            m = re.match(r"^/(\w+)", path)
            top = m.group(1) if m else "dc"
            for priv in self.privileges(path):
                if top == "pool":
                    if priv.startswith("VM.") or priv == "Permissions.Modify":
                        out["vms"][priv] = 1
                    if priv.startswith("Datastore.") or priv == "Permissions.Modify":
                        out["storage"][priv] = 1
                elif top in categories and re.match(f"^({categories[top]})", priv):
                    out[top][priv] = 1
        return out

    # -- endpoint rules --------------------------------------------------------------------
    def authorize(self, rule: Rule, params: Mapping[str, object]) -> None:
        """``check_api2_permissions``: root@pam and ``user: all`` pass; else the check."""
        if self.is_root or rule.user is not None or rule.check is None:
            return
        self._run(rule.check, params, noerr=False)

    def _run(self, check: Check, params: Mapping[str, object], *, noerr: bool) -> bool:
        if isinstance(check, Both):
            for sub in check.checks:
                self._run(sub, params, noerr=False)
            return True
        if isinstance(check, Either):
            if any(self._run(sub, params, noerr=True) for sub in check.checks):
                return True
            if noerr:
                return False
            raise perm_error()
        if check.require_param is not None and params.get(check.require_param) is None:
            if noerr:
                return False
            raise perm_error()
        path = re.sub(r"{(\w+)}", lambda m: str(params.get(m.group(1), "")), check.path)
        if noerr:
            return self.has(path, check.privs, any_=check.any)
        self.check(path, check.privs, any_=check.any)
        return True
