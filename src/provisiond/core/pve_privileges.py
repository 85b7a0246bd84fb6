"""Proxmox VE 8.4 privileges and built-in roles, as pve-access-control defines them.

PVE builds its predefined roles from privilege groups (``AccessControl.pm`` ``$privgroups`` and
``create_roles``): per category, ``PVE<Cat>Admin`` holds the admin, user and audit privileges,
``PVE<Cat>User`` (only where the category has user privileges) the user and audit ones;
``PVEAdmin`` holds every admin/user/audit privilege except ``Mapping.Modify``; ``PVEAuditor``
every audit privilege; ``PVETemplateUser`` is ``VM.Clone`` + ``VM.Audit``; ``Administrator``
holds every privilege (root-only ones and ``Permissions.Modify`` included); ``NoAccess`` none.

Pure data: the simulator grants by it, topology documents are validated against it, and the
daemon can name what its token lacks with it.
"""

from __future__ import annotations

import re
from types import MappingProxyType

# category -> (root-only, admin, user, audit) privileges
PRIVGROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "VM": (
        (),
        (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.Migrate",
            "VM.Monitor",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ),
        ("VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.PowerMgmt"),
        ("VM.Audit",),
    ),
    "Sys": (
        ("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming"),
        ("Sys.Console", "Sys.Syslog"),
        (),
        ("Sys.Audit",),
    ),
    "Datastore": (
        (),
        ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        ("Datastore.AllocateSpace",),
        ("Datastore.Audit",),
    ),
    "SDN": ((), ("SDN.Allocate", "SDN.Audit"), ("SDN.Use",), ("SDN.Audit",)),
    "User": (("Realm.Allocate",), ("User.Modify", "Group.Allocate", "Realm.AllocateUser"), (), ()),
    "Pool": ((), ("Pool.Allocate",), ("Pool.Audit",), ("Pool.Audit",)),
    "Mapping": ((), ("Mapping.Modify",), ("Mapping.Use",), ("Mapping.Audit",)),
}

PRIVILEGES: frozenset[str] = frozenset(
    {"Permissions.Modify"} | {p for groups in PRIVGROUPS.values() for g in groups for p in g}
)


def _builtin_roles() -> dict[str, frozenset[str]]:
    roles: dict[str, set[str]] = {"PVEAdmin": set(), "PVEAuditor": set()}
    for cat, (_root, admin, user, audit) in PRIVGROUPS.items():
        roles[f"PVE{cat}Admin"] = {*admin, *user, *audit}
        roles["PVEAdmin"] |= {*admin, *user, *audit}
        if user:
            roles[f"PVE{cat}User"] = {*user, *audit}
        roles["PVEAuditor"] |= set(audit)
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    out = {name: frozenset(privs) for name, privs in roles.items()}
    out["Administrator"] = PRIVILEGES
    out["NoAccess"] = frozenset()
    return out


BUILTIN_ROLES: MappingProxyType[str, frozenset[str]] = MappingProxyType(_builtin_roles())

# AccessControl.pm ``check_path``: the ACL paths PVE accepts
_SEG = r"[A-Za-z0-9.\-_]+"
ACL_PATH_RE = re.compile(
    rf"^(?:/|/access|/access/groups|/access/groups/{_SEG}|/access/realm|/access/realm/{_SEG}"
    rf"|/nodes|/nodes/{_SEG}|/pool|/pool/{_SEG}|/sdn|/sdn/zones|/sdn/zones/{_SEG}"
    rf"|/sdn/zones/{_SEG}/{_SEG}|/sdn/zones/{_SEG}/{_SEG}/[1-9][0-9]{{0,3}}"
    rf"|/storage|/storage/{_SEG}|/vms|/vms/[1-9][0-9]{{2,}}"
    rf"|/mapping|/mapping/{_SEG}|/mapping/{_SEG}/{_SEG})$"
)
ROLE_ID_RE = re.compile(r"^[A-Za-z0-9.\-_]+$")  # pve-roleid
