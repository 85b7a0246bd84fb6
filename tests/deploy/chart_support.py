"""Rendering the Helm chart and judging what comes out: ``helm template`` into objects, and the
Pod Security Standards' "restricted" profile as a function of a pod spec (the rules of
kubernetes.io/docs/concepts/security/pod-security-standards, baseline included)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from deploy_support import CHART, tool

VALUES = Path(__file__).parent / "values"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, check=False)


def render(*args: str, namespace: str = "provisiond") -> list[dict[str, Any]]:
    done = helm("template", "pd", str(CHART), "--namespace", namespace, *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
_BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """Each rule of the "restricted" profile the pod spec breaks (empty: it complies)."""
    out: list[str] = []
    psc = spec.get("securityContext") or {}
    out += [
        f"{k} must be unset or false" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)
    ]
    out += [
        f"sysctl {s['name']} is not in the safe set"
        for s in psc.get("sysctls") or []
        if s["name"] not in _SAFE_SYSCTLS
    ]
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            out.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")
    containers = [
        *spec.get("containers", []),
        *spec.get("initContainers", []),
        *spec.get("ephemeralContainers", []),
    ]
    for c in containers:
        name, sc = c["name"], c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities must drop ALL")
        added = set(caps.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities added {sorted(added)}")
        if added - _BASELINE_CAPS:
            out.append(f"{name}: capabilities beyond baseline")
        if any(port.get("hostPort") for port in c.get("ports") or []):
            out.append(f"{name}: hostPort")
        if (sc.get("procMount") or "Default") != "Default":
            out.append(f"{name}: procMount")
        se_type = (sc.get("seLinuxOptions") or {}).get("type", "")
        if se_type not in ("", "container_t", "container_init_t", "container_kvm_t"):
            out.append(f"{name}: seLinux type {se_type}")
    return out


def settings_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """provisiond's settings file as the chart renders it into its ConfigMap."""
    (cm,) = [c for c in by_kind(objects, "ConfigMap") if "provisiond.yaml" in (c["data"] or {})]
    settings: dict[str, Any] = yaml.safe_load(cm["data"]["provisiond.yaml"])
    return settings
