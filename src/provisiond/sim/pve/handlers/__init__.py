"""Request handlers, one module per part of the API tree, and the route table.

A handler takes a ``Call`` (the cluster, the validated parameters, the authenticated user) and
returns the ``data`` of the response, or raises ``PveError``. Handlers run on the simulator's
loop and are the only code besides task bodies that changes the cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property

from provisiond.sim.pve.permissions import Perms
from provisiond.sim.pve.state import Cluster, Value, VmState


@dataclass(frozen=True, slots=True)
class Listing:
    """A list result that also reports ``total`` in the envelope (tasks, task log)."""

    data: list[dict[str, object]]
    total: int


@dataclass
class Call:
    cluster: Cluster
    params: dict[str, Value]
    user: str  # "user@realm" or, for API tokens, "user@realm!tokenid"

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.params.get(name, default)
        return None if value is None else int(value)

    def get_str(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name, default)
        return None if value is None else str(value)

    def flag(self, name: str) -> bool:
        return bool(self.params.get(name, 0))

    def vm(self) -> VmState:
        """The VM of a ``…/qemu/{vmid}`` path (PVE's error when its config is not on the node)."""
        return self.cluster.vm(str(self.params["node"]), int(self.params["vmid"]))

    @property
    def is_root(self) -> bool:
        """PVE's ``$authuser eq 'root@pam'``: never true for an API token, even root's."""
        return self.user == "root@pam"

    @cached_property
    def perms(self) -> Perms:
        """The caller's privileges (``perms.check(path, privs)`` raises PVE's 403)."""
        return self.cluster.access.for_user(self.user)


Handler = Callable[[Call], Awaitable[object]]
