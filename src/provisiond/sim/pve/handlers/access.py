"""``/access`` endpoints (ticket login and renewal, effective permissions) and the creation of
PCI resource mappings (``POST /cluster/mapping/pci``)."""

from __future__ import annotations

import re

from provisiond.sim.pve.errors import ParamError, PveError
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.state import MapEntry, PciMap
from provisiond.sim.pve.validation import FORMATS

# -- /access/ticket, /access/permissions ---------------------------------------------------------


async def create_ticket(call: Call) -> object:
    """acl ``create_ticket``: a password, or a valid ticket as the password (renewal), gives a
    new ticket + CSRF token; with ``path`` + ``privs`` it only verifies. Any failure is 401
    ``authentication failure`` (no details, against user enumeration)."""
    cluster = call.cluster
    access = cluster.access
    username = str(call.params["username"])
    realm = call.get_str("realm")
    if realm:
        username = f"{username}@{realm}"
    path, privs = call.get_str("path"), call.get_str("privs")
    try:
        user = access.login(username, str(call.params["password"]))
        if path and privs:
            wanted = [p for p in re.split(r"[,;\s]+", privs) if p]
            if not access.for_user(user).has(path, wanted):
                raise PveError(f"no permission ({path}, {privs})")
            return {"username": user}
    except PveError:
        raise PveError("authentication failure", status=401) from None
    ticket, csrf = access.tickets.issue(user)
    perms = access.for_user(user)
    out: dict[str, object] = {
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "username": user,
        "cap": perms.capabilities(),
    }
    if len(cluster.nodes) > 1 and perms.has("/", ["Sys.Audit"]):
        out["clustername"] = cluster.name
    return out


async def permissions(call: Call) -> object:
    """acl ``permissions``: ``{path: {privilege: propagate}}`` for the caller (or ``userid``:
    the caller's own tokens freely, anyone else's with Sys.Audit on /access); one path with
    ``path`` (``{}`` of privileges when it has none), else every path where it has some."""
    authid = call.user
    userid = call.get_str("userid") or authid
    owner, sep, _ = userid.partition("!")
    if userid != authid and not (sep and owner == authid):
        call.perms.check("/access", ["Sys.Audit"])
    perms = call.cluster.access.for_user(userid)
    path = call.get_str("path")
    if path:
        return {path: dict(sorted(perms.privileges(path).items()))}
    return perms.effective()


# -- POST /cluster/mapping/pci --------------------------------------------------------------------

_MAP_KEYS = ("node", "path", "id", "iommugroup", "subsystem-id", "description")
_PCI_ID_RE = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")
_PATH_ITEM = r"[a-f0-9]{4,}:[a-f0-9]{2}:[a-f0-9]{2}(?:.[a-f0-9])?"
_PATH_RE = re.compile(rf"^(?:{_PATH_ITEM};)*{_PATH_ITEM}$")


def _map_entry(text: str) -> MapEntry:
    """One ``map`` item, a property string; ValueError with PVE's format-error style."""
    props: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError("value without key, but schema does not define a default key")
        if key in props:
            raise ValueError(f"duplicate key in comma-separated list property: {key}")
        if key not in _MAP_KEYS:
            raise ValueError(f"format error\n{key}: property is not defined in schema")
        props[key] = value
    for key in ("id", "node", "path"):
        if key not in props:
            raise ValueError(f"format error\n{key}: property is missing and it is not optional")
    try:
        FORMATS["pve-node"](props["node"])
    except ValueError as exc:
        raise ValueError(f"format error\nnode: invalid format - {exc}") from None
    for key, regex in (("id", _PCI_ID_RE), ("subsystem-id", _PCI_ID_RE), ("path", _PATH_RE)):
        if key in props and not regex.match(props[key]):
            raise ValueError(f"format error\n{key}: value does not match the regex pattern")
    group = props.get("iommugroup")
    if group is not None and not re.fullmatch(r"-?\d+", group):
        raise ValueError(f"format error\niommugroup: type check ('integer') failed - got '{group}'")
    return MapEntry(
        node=props["node"],
        path=props["path"],
        id=props["id"],
        iommugroup=int(group) if group is not None else None,
        subsystem_id=props.get("subsystem-id"),
        description=props.get("description"),
    )


async def create_mapping(call: Call) -> object:
    """mgr ``Mapping/PCI.pm`` ``create``: items are checked first (400), then under the config
    lock ``create hardware mapping failed: pci ID '<id>' already defined``."""
    cluster = call.cluster
    mapping_id = str(call.params["id"])
    entries = []
    for item in str(call.params["map"]).split("\0"):
        try:
            entries.append(_map_entry(item))
        except ValueError as exc:
            raise ParamError({"map": f"invalid format - {exc}\n"}) from None
    if mapping_id in cluster.mappings:
        raise PveError(f"create hardware mapping failed: pci ID '{mapping_id}' already defined")
    cluster.mappings[mapping_id] = PciMap(
        mapping_id,
        call.get_str("description") or "",
        call.flag("live-migration-capable"),
        call.flag("mdev"),
        entries,
    )
    return None
