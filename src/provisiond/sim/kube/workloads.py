"""The workloads a linked cluster runs, and the few controllers that keep them in place.

When a node first turns Ready it gets:

- a ``kube-proxy`` pod (namespace ``kube-system``) owned by the ``kube-proxy`` DaemonSet
  (ownerReference ``apps/v1`` DaemonSet, ``controller: true``; the DaemonSet object is served by
  ``apps/v1`` so ``kubectl drain --ignore-daemonsets`` finds it). A deleted DaemonSet pod is
  recreated on the same node (the DaemonSet controller's job);
- on control-plane nodes, a ``kube-apiserver-<node>`` mirror pod (annotation
  ``kubernetes.io/config.mirror``, owned by its Node, as the kubelet creates static pods);
- on GPU workers (capacity ``nvidia.com/gpu`` > 0), ``PODS_PER_GPU_NODE`` pods of the
  ``inference`` Deployment (namespace ``ml``, owned by its ReplicaSet), covered by the PDB
  ``inference`` (``maxUnavailable: 1``). The ReplicaSet's scale (``Disruption.scales``) is
  ``PODS_PER_GPU_NODE`` x GPU workers seen. A deleted ``inference`` pod is replaced by a new
  Pending pod, which the scheduler stand-in binds to the Ready, schedulable GPU worker with the
  fewest ``inference`` pods whose NoSchedule/NoExecute taints it tolerates (none but the
  default not-ready/unreachable NoExecute ones); it turns Running and Ready ``pod_delay`` seconds
  later. No fitting node: it stays Pending.

Nothing else is scheduled or reconciled: no Deployment/ReplicaSet objects are served, and pods
are not evicted from NotReady nodes (their Ready condition turns False, as the node lifecycle
controller's ``MarkPodsNotReady`` does).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid

from provisiond.sim.kube import nodes
from provisiond.sim.kube.cluster import KubeCluster
from provisiond.sim.kube.errors import Obj
from provisiond.sim.kube.resources import DAEMONSET, PDB, POD
from provisiond.sim.kube.store import now

PODS_PER_GPU_NODE = 2
ML = "ml"
SYSTEM = "kube-system"
RS_NAME = "inference-7d4b9c6f5"
GPU_PRESENT = "nvidia.com/gpu.present"  # the label GPU feature discovery puts on GPU nodes
RS_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "provisiond-sim/replicaset/inference"))
DS_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, "provisiond-sim/daemonset/kube-proxy"))
TOLERATIONS = [
    {"key": nodes.NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {
        "key": nodes.UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def _suffix() -> str:
    return secrets.token_hex(3)[:5]


def _pod(name: str, ns: str, labels: dict[str, str], node: str | None, owner: Obj) -> Obj:
    spec: Obj = {
        "containers": [{"name": name.split("-", 1)[0], "image": "registry.k8s.io/pause:3.10"}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "tolerations": TOLERATIONS,
    }
    if node is not None:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner]},
        "spec": spec,
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


def _running(pod: Obj, ready: bool = True) -> None:
    t = now()
    pod["status"] = {
        "phase": "Running",
        "startTime": pod.get("status", {}).get("startTime", t),
        "conditions": [
            {
                "type": c,
                "status": "True" if ready or c == "PodScheduled" else "False",
                "lastTransitionTime": t,
            }
            for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
    }


class Workloads:
    def __init__(self, kube: KubeCluster, *, pod_delay: float) -> None:
        self.kube = kube
        self.pod_delay = pod_delay
        self.gpu_nodes: set[str] = set()
        self._timers: list[asyncio.TimerHandle] = []
        kube.pods.on_deleted.append(self._replace)

    # -- when a node turns Ready -----------------------------------------------------------
    def node_ready(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        store = self.kube.store
        if store.get(DAEMONSET.bucket, SYSTEM, "kube-proxy") is None:
            store.create(DAEMONSET.bucket, _daemonset())
        pods = store.all(POD.bucket)
        on_node = [p for p in pods if p["spec"].get("nodeName") == name]
        if not any(p["metadata"]["labels"].get("k8s-app") == "kube-proxy" for p in on_node):
            self._daemon_pod(name)
        labels = node["metadata"].get("labels") or {}
        mirror = f"kube-apiserver-{name}"
        if nodes.CONTROL_PLANE in labels and store.get(POD.bucket, SYSTEM, mirror) is None:
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": name,
                "uid": node["metadata"]["uid"],
                "controller": True,
            }
            pod = _pod(
                mirror,
                SYSTEM,
                {"component": "kube-apiserver", "tier": "control-plane"},
                name,
                owner,
            )
            pod["metadata"]["annotations"] = {"kubernetes.io/config.mirror": secrets.token_hex(16)}
            _running(pod)
            store.create(POD.bucket, {"kind": "Pod", "apiVersion": "v1", **pod})
        gpus = int((node["status"].get("capacity") or {}).get(nodes.GPU, "0"))
        if gpus and name not in self.gpu_nodes:
            self.gpu_nodes.add(name)
            self._ensure_pdb()
            self.kube.disruption.scales[(ML, "ReplicaSet", RS_NAME)] = PODS_PER_GPU_NODE * len(
                self.gpu_nodes
            )
            for _ in range(PODS_PER_GPU_NODE):
                self._inference_pod(name)
        self.set_pods_ready(name, ready=True)

    def set_pods_ready(self, node: str, *, ready: bool) -> None:
        """The node's running pods follow its readiness (MarkPodsNotReady / kubelet)."""
        for pod in self.kube.store.all(POD.bucket):
            if pod["spec"].get("nodeName") != node or pod["metadata"].get("deletionTimestamp"):
                continue
            if pod["status"].get("phase") != "Running":
                continue
            if any(
                c["type"] == "Ready" and (c["status"] == "True") == ready
                for c in pod["status"].get("conditions", [])
            ):
                continue
            _running(pod, ready)
            self.kube.store.replace(POD.bucket, pod)

    # -- pods ------------------------------------------------------------------------------
    def _daemon_pod(self, node: str) -> None:
        owner = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "kube-proxy",
            "uid": DS_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        pod = _pod(f"kube-proxy-{_suffix()}", SYSTEM, {"k8s-app": "kube-proxy"}, node, owner)
        pod["spec"]["tolerations"] = [{"operator": "Exists"}]  # DaemonSets tolerate everything
        _running(pod)
        self.kube.store.create(POD.bucket, {"kind": "Pod", "apiVersion": "v1", **pod})

    def _inference_pod(self, node: str | None) -> None:
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": RS_NAME,
            "uid": RS_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        labels = {"app": "inference", "pod-template-hash": RS_NAME.rsplit("-", 1)[1]}
        pod = _pod(f"{RS_NAME}-{_suffix()}", ML, labels, node, owner)
        pod["spec"]["nodeSelector"] = {GPU_PRESENT: "true"}
        pod["spec"]["containers"][0]["resources"] = {"limits": {nodes.GPU: "1"}}
        created = self.kube.store.create(POD.bucket, {"kind": "Pod", "apiVersion": "v1", **pod})
        if node is not None:
            self._start_later(created)

    def _start_later(self, pod: Obj) -> None:
        ns, name, uid = (
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            pod["metadata"]["uid"],
        )

        def start() -> None:
            current = self.kube.store.get(POD.bucket, ns, name)
            if current is None or current["metadata"]["uid"] != uid:
                return
            if current["metadata"].get("deletionTimestamp"):
                return
            node = self.kube.store.get("nodes", "", current["spec"].get("nodeName", ""))
            _running(current, node is not None and nodes.is_ready(node))
            self.kube.store.replace(POD.bucket, current)

        self._timers.append(asyncio.get_running_loop().call_later(self.pod_delay, start))

    def _replace(self, gone: Obj) -> None:
        owner: Obj = next(
            (r for r in gone["metadata"].get("ownerReferences") or [] if r.get("controller")), {}
        )
        if owner.get("uid") == RS_UID:
            self._inference_pod(None)
            self.schedule()
        elif owner.get("uid") == DS_UID:
            node = self.kube.store.get("nodes", "", gone["spec"].get("nodeName", ""))
            if node is not None:
                self._daemon_pod(node["metadata"]["name"])

    def schedule(self) -> None:
        """Bind Pending ``inference`` pods to fitting GPU workers (the scheduler stand-in)."""
        store = self.kube.store
        pods = store.all(POD.bucket, ML)
        for pod in pods:
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            candidates = [
                n
                for n in (store.get("nodes", "", g) for g in sorted(self.gpu_nodes))
                if n is not None and _fits(n, pod)
            ]
            if not candidates:
                continue
            load = {n["metadata"]["name"]: 0 for n in candidates}
            for p in pods:
                if p["spec"].get("nodeName") in load:
                    load[p["spec"]["nodeName"]] += 1
            target = min(load, key=lambda n: (load[n], n))
            pod["spec"]["nodeName"] = target
            bound = store.replace(POD.bucket, pod)
            pods = store.all(POD.bucket, ML)
            self._start_later(bound)

    def _ensure_pdb(self) -> None:
        if self.kube.store.get(PDB.bucket, ML, "inference") is None:
            self.kube.registry.create(
                PDB,
                ML,
                {
                    "metadata": {"name": "inference", "namespace": ML},
                    "spec": {
                        "maxUnavailable": 1,
                        "selector": {"matchLabels": {"app": "inference"}},
                    },
                },
            )

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()


def _fits(node: Obj, pod: Obj) -> bool:
    if node["spec"].get("unschedulable") or not nodes.is_ready(node):
        return False
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return False
    return not any(
        t.get("effect") in ("NoSchedule", "NoExecute") for t in node["spec"].get("taints") or []
    )


def _daemonset() -> Obj:
    labels = {"k8s-app": "kube-proxy"}
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "kube-proxy",
            "namespace": SYSTEM,
            "uid": DS_UID,
            "generation": 1,
            "labels": labels,
        },
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.36.3"}
                    ],
                    "tolerations": [{"operator": "Exists"}],
                },
            },
            "updateStrategy": {"type": "RollingUpdate"},
        },
        "status": {
            "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0,
            "numberMisscheduled": 0,
            "numberReady": 0,
        },
    }
