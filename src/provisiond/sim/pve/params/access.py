"""Parameters of the access endpoints (ticket, permissions) and of PCI mapping creation, the
endpoints ``handlers/access.py`` serves.

``array`` values arrive as repeated form keys, joined by NUL (server._params); the handler
checks each item. The userid pattern is the schema's, Perl's ``(?^:`` included.
"""

from __future__ import annotations

from provisiond.sim.pve.params.schema import Endpoint, P

_REALM = "(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"
USERID_OR_TOKEN = f"(?^:^(?^:[^\\s:/]+)\\@{_REALM}(?:!{_REALM})?$)"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/access/ticket",
        {
            "new-format": P("boolean"),
            "otp": P("string"),
            "password": P("string", optional=False),
            "path": P("string", max_length=64),
            "privs": P("string", fmt="pve-priv-list", max_length=64),
            "realm": P("string", fmt="pve-realm", max_length=32),
            "tfa-challenge": P("string"),
            "username": P("string", optional=False, max_length=64),
        },
        returns=("username",),
    ),
    Endpoint(
        "GET",
        "/access/permissions",
        {"path": P("string"), "userid": P("string", pattern=USERID_OR_TOKEN)},
    ),
    Endpoint(
        "POST",
        "/cluster/mapping/pci",
        {
            "description": P("string", max_length=4096),
            "id": P("string", optional=False, fmt="pve-configid"),
            "live-migration-capable": P("boolean"),
            "map": P("array", optional=False),
            "mdev": P("boolean"),
        },
    ),
)
