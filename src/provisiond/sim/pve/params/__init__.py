"""The simulator's own table of the endpoints it serves and their parameters.

Every request is checked against this table before a handler runs, as pveproxy checks it against
the method's JSON schema: a parameter the table lacks is refused with PVE's
``property is not defined in schema …`` text, even where real PVE would accept it (the simulator
serves a subset of each method's parameters; docs/simulator.md lists what that means).
The table's facts come from the PVE 8.4 API schema; ``tests/sim/test_pve_contract.py`` checks it
against ``../shared/proxmox/pve-api-schema.json`` parameter by parameter.

One module per endpoint family (``cluster``, ``qemu``, ``vmstate``, ``access``; the VM
options in ``vmoptions``) over the shapes in
``schema``. ``propstring=True`` marks a property-string format (a dict in the schema); the
simulator parses those values itself (``validation.py``).
"""

from __future__ import annotations

from provisiond.sim.pve.params import access, cluster, harules, qemu, vmstate
from provisiond.sim.pve.params.schema import Endpoint, P

__all__ = ["BY_ROUTE", "BY_ROUTE_9", "ENDPOINTS", "ENDPOINTS_9", "Endpoint", "P"]

ENDPOINTS: tuple[Endpoint, ...] = (
    *cluster.ENDPOINTS,
    *qemu.ENDPOINTS,
    *vmstate.ENDPOINTS,
    *access.ENDPOINTS,
)
BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ENDPOINTS}
assert len(BY_ROUTE) == len(ENDPOINTS), "one table entry per route"
# PVE 9.x only (``harules``), checked against the 9.1 schema
ENDPOINTS_9: tuple[Endpoint, ...] = harules.ENDPOINTS_9
BY_ROUTE_9: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ENDPOINTS_9}
