"""The permission rule of each endpoint (``RULES``), as the PVE 8.4 schema's ``permissions`` says.

A rule is data: ``Perm`` (``["perm", path, [privs], any => 1, require_param => p]``), ``Both``
(``and``) and ``Either`` (``or``) nest as in the schema, and ``schema()`` renders them back so
``tests/sim/test_pve_access.py`` can compare the table with the schema. ``Perms.authorize``
(``permissions.py``) evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
_POWER = ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")


def _vm(*privs: str, any_: bool = False) -> Rule:
    return Rule(Perm("/vms/{vmid}", privs, any_))


def _root(*privs: str, any_: bool = False) -> Rule:
    return Rule(Perm("/", privs, any_))


def _ha_collection(collection: str, item: str) -> dict[tuple[str, str], Rule]:
    """An HA configuration collection (resources, rules): list it and read an item with
    Sys.Audit on ``/``; create, update and delete with Sys.Console."""
    read, write = _root("Sys.Audit"), _root("Sys.Console")
    return {
        ("GET", collection): read,
        ("POST", collection): write,
        ("GET", item): read,
        ("PUT", item): write,
        ("DELETE", item): write,
    }


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
    **_ha_collection("/cluster/ha/resources", "/cluster/ha/resources/{sid}"),
    ("POST", "/cluster/ha/resources/{sid}/migrate"): _root("Sys.Console"),
    ("POST", "/cluster/ha/resources/{sid}/relocate"): _root("Sys.Console"),
    ("GET", "/cluster/ha/groups"): _root("Sys.Audit"),
    **_ha_collection("/cluster/ha/rules", "/cluster/ha/rules/{rule}"),
    # user: all passes; without the check's Sys.Audit on / the handler answers fewer options
    ("GET", "/cluster/options"): Rule(Perm("/", ("Sys.Audit",)), user="all"),
    ("GET", "/cluster/ha/status/current"): _root("Sys.Audit"),
    ("GET", "/cluster/ha/status/manager_status"): _root("Sys.Audit"),
    ("GET", "/pools"): ALL,
    ("GET", "/pools/{poolid}"): Rule(Perm("/pool/{poolid}", ("Pool.Audit",))),
    ("PUT", "/pools/{poolid}"): Rule(Perm("/pool/{poolid}", ("Pool.Allocate",))),
    ("GET", "/storage"): ALL,
    ("GET", "/nodes/{node}/version"): ALL,
    ("GET", "/nodes/{node}/lxc"): ALL,
    ("GET", "/nodes/{node}/rrddata"): Rule(Perm("/nodes/{node}", ("Sys.Audit",))),
    ("GET", _Q): ALL,
    ("GET", f"{_Q}/rrddata"): _vm("VM.Audit"),
    ("GET", f"{_Q}/snapshot/{{snapname}}"): ALL,
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
    **{("POST", f"{_Q}/status/{action}"): _vm("VM.PowerMgmt") for action in _POWER},
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
    ("PUT", f"{_Q}/snapshot/{{snapname}}/config"): _vm("VM.Snapshot"),
    ("POST", f"{_Q}/snapshot/{{snapname}}/rollback"): _vm(
        "VM.Snapshot", "VM.Snapshot.Rollback", any_=True
    ),
}
