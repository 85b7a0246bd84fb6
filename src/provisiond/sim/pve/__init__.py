"""``provisiond.sim.pve``: a Proxmox VE 8.4 API simulator over HTTPS (``/api2/json``).

Starts from a ``kind: Topology`` document; serves the endpoints in ``params.ENDPOINTS`` with
PVE's envelope, error texts, API-token auth, tasks with real-format UPIDs and scaled durations,
locks, pending changes and PCI mappings. docs/simulator.md maps each behaviour to its test and
lists what is not simulated. Depends on nothing of the daemon but ``provisiond.core`` models.
"""

from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.server import SimServer

__all__ = ["SimHandle", "SimServer"]
