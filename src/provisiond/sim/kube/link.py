"""The link from the Proxmox simulator to the Kubernetes simulator: VMs that run become Nodes.

``start_linked(pve)`` starts a ``KubeSim`` on the Proxmox simulator's own loop and polls the
Proxmox state there every ``poll`` seconds (no locks, no change to the Proxmox simulator). For
every VM that is not a template and not in ``Membership.skip``:

- running (and its host online, and not paused) for ``node_delay`` seconds → its Node is
  registered (name = ``Membership.node_names`` or the VM name; ``systemUUID`` = the VM's
  ``smbios1`` uuid; capacity from cores, memory and ``hostpciN`` GPUs; InternalIP from
  ``ipconfig0``; kubelet labels, ``node-role.kubernetes.io/control-plane`` for control-plane
  VMs) with Ready False;
- ``ready_delay`` seconds later → Ready True, and the workloads of ``workloads.py`` arrive;
- stopped, paused, or its host offline → Ready ``Unknown`` (the kubelet stopped posting; kubectl
  shows NotReady) with the unreachable taints, and its pods not ready — after ``stale_ready``
  seconds (default 0; a real node controller notices after ~40 s, the node stays Ready until
  then: the seam for "a stale Ready"). Started again → ``node_delay`` later the kubelet of the
  new boot posts: a new ``status.nodeInfo.bootID`` (uuid4, as ``/proc/sys/kernel/random/boot_id``)
  and Ready False; Ready True after ``node_delay + ready_delay`` (a reboot).

A migration keeps the Node: it is keyed by name and its uuid comes from the VM config, which a
migration does not change. A destroyed VM leaves its Node behind, NotReady, as a real cluster
does until someone deletes it. Durations are wall-clock seconds (not scaled by the Proxmox
simulator's ``time_scale``).

Proxmox simulator names used (the link's whole interface to it): ``SimHandle.server`` or a
``SimServer`` with ``.loop`` and ``.cluster``; ``Cluster.vms`` (VMID → ``VmState``) and
``Cluster.nodes`` (name → node with ``.online``); ``VmState.vmid``, ``.name``, ``.node``,
``.running``, ``.paused``, ``.started_at`` (a restart between two polls is still a new
boot), ``.is_template``, ``.config``, ``.cpus()``, ``.memory_bytes()``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provisiond.core.desired import DesiredState
from provisiond.sim.kube import nodes
from provisiond.sim.kube.cluster import KubeCluster, Options
from provisiond.sim.kube.resources import NODE
from provisiond.sim.kube.server import KubeSim
from provisiond.sim.kube.workloads import GPU_PRESENT, Workloads

_CONTROL_PLANE_NAME = re.compile(r"(?:^|[-_.])(?:cp|control-?plane|control|master)\d*(?:$|[-_.])")
_HOSTPCI = re.compile(r"^hostpci\d+$")
MiB = 1 << 20


@dataclass(frozen=True)
class Membership:
    """Which VMs join the cluster, and as what."""

    skip: frozenset[str] = frozenset()  # VM names that are not Kubernetes nodes
    node_names: Mapping[str, str] = field(default_factory=dict)  # VM name -> node name
    # VM names of control-plane machines; None: guessed from the name (cp1, k3s-cp2, master-0 …)
    control_plane: frozenset[str] | None = None

    @classmethod
    def from_desired(cls, state: DesiredState) -> Membership:
        """From a fleet spec: VMs with ``kubernetes.node: false`` are skipped, ``nodeName``
        renames, and VMs whose spec'd taints or labels carry the control-plane key, or whose
        name or pool reads as one (``cp``, ``control-plane``, ``master``), are control plane.
        VMs the spec does not know join as workers."""
        vms = state.all_vms()
        return cls(
            skip=frozenset(vm.name for vm in vms if vm.kubernetes is None),
            node_names={
                vm.name: vm.kubernetes.node_name
                for vm in vms
                if vm.kubernetes is not None and vm.kubernetes.node_name != vm.name
            },
            control_plane=frozenset(
                vm.name
                for vm in vms
                if vm.kubernetes is not None
                and (
                    any(t.key == nodes.CONTROL_PLANE for t in vm.kubernetes.taints)
                    or any(k == nodes.CONTROL_PLANE for k, _ in vm.kubernetes.labels)
                    or _CONTROL_PLANE_NAME.search(vm.name) is not None
                    or _CONTROL_PLANE_NAME.search(vm.pool) is not None
                )
            ),
        )

    def is_control_plane(self, vm_name: str) -> bool:
        if self.control_plane is not None:
            return vm_name in self.control_plane
        return _CONTROL_PLANE_NAME.search(vm_name) is not None


def _prop(value: object, key: str) -> str | None:
    for part in str(value or "").split(","):
        k, _, v = part.partition("=")
        if k == key:
            return v
    return None


@dataclass
class _Machine:
    started: float | None = None  # loop time the VM was first seen up, this boot
    down: float | None = None  # loop time the VM was first seen down, since it was up
    posted: bool = False  # the kubelet of this boot has posted (its bootID is on the Node)
    boot: float | None = None  # the VM's start time of this boot: a restart between two ticks


class Link:
    def __init__(
        self,
        kube: KubeCluster,
        pve: Any,
        membership: Membership,
        *,
        node_delay: float,
        ready_delay: float,
        pod_delay: float,
        stale_ready: float = 0.0,
    ) -> None:
        self.kube = kube
        self.stale_ready = stale_ready  # seconds a down VM's Node stays as it was
        self.pve = pve
        self.membership = membership
        self.node_delay = node_delay
        self.ready_delay = ready_delay
        self.workloads = Workloads(kube, pod_delay=pod_delay)
        self.machines: dict[int, _Machine] = {}

    async def run(self, poll: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.tick(loop.time())
            await asyncio.sleep(poll)

    def tick(self, now: float) -> None:
        for vm in list(self.pve.vms.values()):
            if vm.is_template or vm.name in self.membership.skip:
                continue
            name = self.membership.node_names.get(vm.name, vm.name)
            machine = self.machines.setdefault(vm.vmid, _Machine())
            host = self.pve.nodes.get(vm.node)
            up = vm.running and not vm.paused and host is not None and host.online
            node = self.kube.store.get(NODE.bucket, "", name)
            if not up:
                machine.started, machine.posted = None, False
                machine.down = now if machine.down is None else machine.down
                stale = now - machine.down < self.stale_ready
                if node is not None and _ready_status(node) != "Unknown" and not stale:
                    nodes.set_ready(node, "Unknown")
                    self.kube.store.replace(NODE.bucket, node)
                    self.workloads.set_pods_ready(name, ready=False)
                continue
            machine.down = None
            if machine.boot != vm.started_at:  # a new boot, even one no tick saw go down
                machine.started, machine.posted, machine.boot = None, False, vm.started_at
            if machine.started is None:
                machine.started = now
            age = now - machine.started
            if node is None and age >= self.node_delay:
                self._register(vm, name)
                machine.posted = True
            elif node is not None and not machine.posted and age >= self.node_delay:
                # the kubelet of a new boot posts: its bootID, not yet Ready
                node["status"]["nodeInfo"]["bootID"] = nodes.new_boot_id()
                nodes.set_ready(node, "False")
                self.kube.store.replace(NODE.bucket, node)
                self.workloads.set_pods_ready(name, ready=False)
                machine.posted = True
            elif (
                node is not None
                and machine.posted
                and _ready_status(node) != "True"
                and age >= self.node_delay + self.ready_delay
            ):
                nodes.set_ready(node, "True")
                self.workloads.node_ready(self.kube.store.replace(NODE.bucket, node))
        self.workloads.schedule()

    def _register(self, vm: Any, name: str) -> None:
        config = vm.config
        gpus = sum(1 for key in config if _HOSTPCI.match(key))
        ip = (_prop(config.get("ipconfig0"), "ip") or "").split("/", 1)[0]
        if not ip or ip == "dhcp":
            ip = f"10.{(vm.vmid >> 8) & 255}.{vm.vmid & 255}.10"
        memory_mib = vm.memory_bytes() // MiB
        labels = {GPU_PRESENT: "true"} if gpus else {}
        node = nodes.node_object(
            name,
            system_uuid=_prop(config.get("smbios1"), "uuid"),
            cpus=vm.cpus(),
            memory_mib=memory_mib,
            gpus=gpus,
            address=ip,
            instance_type=f"pve-{vm.cpus()}c-{memory_mib // 1024}g",
            control_plane=self.membership.is_control_plane(vm.name),
            labels=labels,
        )
        node["spec"]["providerID"] = f"proxmox://{self.pve.name}/{vm.vmid}"
        self.kube.registry.create(NODE, "", node)
        self.kube.machines[name] = vm.vmid


def _ready_status(node: Any) -> str:
    for cond in node["status"].get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return "Unknown"


def start_linked(
    pve: Any,
    *,
    node_delay: float = 1.0,
    ready_delay: float = 1.0,
    pod_delay: float = 0.2,
    poll: float = 0.05,
    membership: Membership | None = None,
    options: Options | None = None,
    stale_ready: float = 0.0,
) -> KubeSim:
    """Start a ``KubeSim`` linked to a running Proxmox simulator (a ``SimHandle`` or
    ``SimServer``). Stop it before the Proxmox simulator: ``sim.stop()``. ``stale_ready``:
    seconds a stopped VM's Node keeps its Ready condition (``sim.link.stale_ready`` later)."""
    server = getattr(pve, "server", pve)
    sim = KubeSim(options).start(loop=server.loop)
    link = Link(
        sim.cluster,
        server.cluster,
        membership or Membership(),
        node_delay=node_delay,
        ready_delay=ready_delay,
        pod_delay=pod_delay,
        stale_ready=stale_ready,
    )

    async def begin() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(link.run(poll))

    task = asyncio.run_coroutine_threadsafe(begin(), server.loop).result(10)

    def stop() -> None:
        task.cancel()
        link.workloads.cancel()

    sim.on_stop(stop)
    sim.link = link
    return sim
