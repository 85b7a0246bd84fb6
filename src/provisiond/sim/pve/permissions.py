"""PVE's permission computation for one caller (``RPCEnvironment.pm`` ``permissions`` and
``compile_acl_path``) over the ACL model in ``access.py``.

Roles along the ACL path, a deeper entry replacing the roles from above, propagation,
``NoAccess``; VMs in a pool get the pool's roles on ``/vms/<vmid>`` (never propagated, never
trumping an explicit ``NoAccess``); a privilege-separated token gets the intersection of its own
privileges and its user's, a token without separation exactly its user's; ``root@pam`` has
everything. Groups and realms other than the user id's are not simulated. ``authorize``
evaluates an endpoint's rule (``rules.py``); every failure is PVE's 403 text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from provisiond.core.pve_privileges import PRIVILEGES
from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.rules import Both, Check, Either, Rule

if TYPE_CHECKING:
    from provisiond.sim.pve.access import Access

ROOT = "root@pam"


def perm_error(what: str | None = None) -> PveError:
    """pve-common ``raise_perm_exc``: 403 ``Permission check failed[ (<what>)]``."""
    return PveError("Permission check failed" + (f" ({what})" if what else ""), status=403)


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
