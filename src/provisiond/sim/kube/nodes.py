"""Node objects as a kubelet registers and updates them.

``node_object`` builds what a kubelet (v1.36, containerd, Ubuntu 24.04) posts at registration:
the well-known labels (``kubernetes.io/hostname``, ``kubernetes.io/os``/``arch``,
``node.kubernetes.io/instance-type``, ``node-role.kubernetes.io/control-plane`` for control-plane
machines), all ten ``status.nodeInfo`` fields (``systemUUID`` = the VM's SMBIOS UUID, lower
case, as the kubelet reads ``/sys/class/dmi/id/product_uuid``), capacity/allocatable, addresses
and the five conditions. ``set_ready`` flips ``Ready`` the way the kubelet (``True``/``False``)
or the node lifecycle controller (``Unknown`` when the kubelet stops reporting) does, with the
matching ``node.kubernetes.io/not-ready``/``unreachable`` NoSchedule+NoExecute taints.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from provisiond.sim.kube.errors import Obj
from provisiond.sim.kube.store import now

KUBELET_VERSION = "v1.36.3"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
GPU = "nvidia.com/gpu"

_PRESSURE = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def _condition(kind: str, status: str, reason: str, message: str) -> Obj:
    t = now()
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": t,
        "lastTransitionTime": t,
        "reason": reason,
        "message": message,
    }


def node_object(
    name: str,
    *,
    system_uuid: str | None = None,
    cpus: int = 4,
    memory_mib: int = 8192,
    gpus: int = 0,
    address: str = "10.0.0.10",
    instance_type: str = "",
    control_plane: bool = False,
    labels: dict[str, str] | None = None,
    ready: bool = False,
) -> Obj:
    digest = hashlib.sha256(name.encode()).hexdigest()
    all_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    if instance_type:
        all_labels["node.kubernetes.io/instance-type"] = instance_type
        all_labels["beta.kubernetes.io/instance-type"] = instance_type
    if control_plane:
        all_labels[CONTROL_PLANE] = ""
    all_labels.update(labels or {})
    capacity: dict[str, Any] = {
        "cpu": str(cpus),
        "ephemeral-storage": "101430960Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{memory_mib * 1024}Ki",
        "pods": "110",
    }
    if gpus:
        capacity[GPU] = str(gpus)
    allocatable = dict(capacity, memory=f"{max(memory_mib - 256, 0) * 1024}Ki")
    node: Obj = {
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [_condition(k, "False", r, m) for k, r, m in _PRESSURE],
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": digest[:32],
                "systemUUID": (system_uuid or str(uuid.uuid4())).lower(),
                "bootID": new_boot_id(),
                "kernelVersion": "6.8.0-51-generic",
                "osImage": "Ubuntu 24.04.1 LTS",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }
    if control_plane:
        node["spec"]["taints"] = [{"key": CONTROL_PLANE, "effect": "NoSchedule"}]
    set_ready(node, "True" if ready else "False")
    return node


def new_boot_id() -> str:
    """A boot's id, as the kernel makes one (``/proc/sys/kernel/random/boot_id``: a uuid4)."""
    return str(uuid.uuid4())


_READY_TEXT = {
    "True": ("KubeletReady", "kubelet is posting ready status"),
    "False": ("KubeletNotReady", "container runtime network not ready: NetworkReady=false"),
    "Unknown": ("NodeStatusUnknown", "Kubelet stopped posting node status."),
}


def set_ready(node: Obj, status: str) -> None:
    """Set the Ready condition (``True``/``False``/``Unknown``) and the readiness taints the
    node lifecycle controller keeps in step with it. Other taints are left alone."""
    conditions = [c for c in node["status"].get("conditions", []) if c.get("type") != "Ready"]
    previous = next(
        (c for c in node["status"].get("conditions", []) if c.get("type") == "Ready"), None
    )
    reason, message = _READY_TEXT[status]
    cond = _condition("Ready", status, reason, message)
    if previous is not None and previous.get("status") == status:
        cond["lastTransitionTime"] = previous.get("lastTransitionTime", cond["lastTransitionTime"])
    node["status"]["conditions"] = [*conditions, cond]
    taints = [
        t for t in node["spec"].get("taints") or [] if t.get("key") not in (NOT_READY, UNREACHABLE)
    ]
    if status != "True":
        key = NOT_READY if status == "False" else UNREACHABLE
        taints += [
            {"key": key, "effect": "NoSchedule"},
            {"key": key, "effect": "NoExecute", "timeAdded": now()},
        ]
    if taints:
        node["spec"]["taints"] = taints
    else:
        node["spec"].pop("taints", None)


def is_ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )
