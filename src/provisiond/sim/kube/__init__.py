"""``provisiond.sim.kube``: a Kubernetes API simulator over HTTPS for the official client and
kubectl, optionally linked to the Proxmox simulator (its VMs join the cluster as Nodes).

Serves discovery, core/v1 nodes (+status), pods (+eviction), events, policy/v1
poddisruptionbudgets, coordination.k8s.io/v1 leases, events.k8s.io/v1 events and apps/v1
daemonsets (read-only) with one resourceVersion counter, optimistic concurrency, the three
patch types, the real validation messages, watches with bookmarks and 410-as-ERROR-event, and
fault seams. docs/simulator.md says what is and is not simulated.
"""

from provisiond.sim.kube.cluster import Options
from provisiond.sim.kube.link import Membership, start_linked
from provisiond.sim.kube.server import KubeSim

__all__ = ["KubeSim", "Membership", "Options", "start_linked"]
