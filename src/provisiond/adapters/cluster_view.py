"""The whole observation: Proxmox plus, when configured, the Kubernetes nodes.

``ClusterView`` is the ``ClusterReader`` the daemon uses: it observes Proxmox and lists the
Kubernetes nodes at the same time and joins them into one ``ObservedState``. A Kubernetes read
that fails (unreachable, 5xx, forbidden) never fails the observation: ``kube`` is ``None`` and
``unobserved.kubernetes`` is set, so node actions wait (reported "not observed: kubernetes
nodes") while the Proxmox side is reconciled as usual. Single-VM reads go to Proxmox unchanged.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog

from provisiond.core.errors import ProvisiondError
from provisiond.core.hacluster import HaRule
from provisiond.core.observed import KubeNode, ObservedState, ObservedVM, Task
from provisiond.core.ports import ClusterReader, KubeReader, VMConfigRead

log = structlog.get_logger("provisiond.observer")


class ClusterView:
    def __init__(self, proxmox: ClusterReader, kube: KubeReader | None) -> None:
        self.proxmox = proxmox
        self.kube = kube

    async def observe(self) -> ObservedState:
        if self.kube is None:
            return await self.proxmox.observe()
        observed, nodes = await asyncio.gather(self.proxmox.observe(), self._nodes())
        if nodes is None:
            return replace(
                observed, kube=None, unobserved=replace(observed.unobserved, kubernetes=True)
            )
        return replace(observed, kube=nodes)

    async def _nodes(self) -> tuple[KubeNode, ...] | None:
        assert self.kube is not None
        try:
            return await self.kube.nodes()
        except ProvisiondError as exc:
            log.warning("kube_unobserved", error=str(exc))
            return None

    async def find_vm(self, vmid: int) -> ObservedVM | None:
        return await self.proxmox.find_vm(vmid)

    async def vm_status(self, vmid: int, host: str) -> ObservedVM | None:
        return await self.proxmox.vm_status(vmid, host)

    async def vm_config(self, vmid: int, host: str) -> VMConfigRead | None:
        return await self.proxmox.vm_config(vmid, host)

    async def active_tasks(self) -> tuple[Task, ...]:
        return await self.proxmox.active_tasks()

    async def ha_rules(self) -> tuple[HaRule, ...]:
        return await self.proxmox.ha_rules()
