"""Power: start, shut down, and reboot to apply pending changes.

A shutdown or a reboot disrupts: it passes the guards of ``disruption`` first (never the
daemon's own VM, never with Kubernetes unobserved, within the budget) and drains the VM's node
before it. A reboot for pending changes happens only when the fleet's ``rebootForPending`` is
on, and uncordons the node after it.
"""

from __future__ import annotations

from provisiond.core.actions import Reboot, Shutdown, Start
from provisiond.core.desired import DesiredVM
from provisiond.core.observed import KubeNode, ObservedVM
from provisiond.core.planning.disruption import disrupt, kube_unobserved, self_guard
from provisiond.core.planning.kube import drain, uncordon
from provisiond.core.planning.state import PlanState


def start(s: PlanState, d: DesiredVM, host: str, reason: str) -> None:
    s.emit(Start(id=f"start:{d.vmid}", reason=reason, vmid=d.vmid, name=d.name, host=host), d.vmid)


def may_power_off(s: PlanState, d: DesiredVM, why: str) -> bool:
    """Whether the guards let ``d`` be shut down (taking a disruption); reports why not."""
    if self_guard(s, d, "shut down") or kube_unobserved(s, d):
        return False
    return disrupt(s, d, why)


def power_off(s: PlanState, d: DesiredVM, vm: ObservedVM, node: KubeNode | None, why: str) -> None:
    """Shut ``vm`` down, draining its node first (``may_power_off`` said yes)."""
    drain(s, d, node, why)
    s.stopped.add(d.vmid)
    s.emit(
        Shutdown(
            id=f"shutdown:{d.vmid}",
            reason=why,
            vmid=d.vmid,
            name=d.name,
            host=vm.host,
            force_stop=s.fleet(d).policy.force_stop_after_shutdown_timeout,
        ),
        d.vmid,
    )


def apply_pending(
    s: PlanState, d: DesiredVM, host: str, keys: list[str], node: KubeNode | None
) -> None:
    why = f"pending changes to {', '.join(keys)} need a reboot"
    if not s.fleet(d).policy.reboot_for_pending:
        s.block("pending_reboot", f"{why} (rebootForPending is off)", d)
        return
    if self_guard(s, d, "rebooted") or kube_unobserved(s, d) or not disrupt(s, d, why):
        return
    drain(s, d, node, why)
    s.emit(
        Reboot(
            id=f"reboot:{d.vmid}", reason=why, vmid=d.vmid, name=d.name, host=host, keys=tuple(keys)
        ),
        d.vmid,
    )
    if node is not None:
        uncordon(s, d, node, why)
