"""End-to-end helpers: the simulator in this process, the daemon (or apply) as a real process.

The daemon talks to the simulator through the real proxmoxer client over verified HTTPS; it
logs JSON lines to stderr, which tests read to wait for events. ``check_world`` states the
invariants every crash test ends with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisiond.adapters.specfile import load_desired
from provisiond.cli.sandbox import executor_settings
from provisiond.core.desired import DesiredState
from provisiond.settings import Settings
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import EXAMPLES

TIME_SCALE = 0.01
# The daemon polls tasks, retries and backs off as much faster as the simulator's tasks run:
# the documented ``executor.*`` settings, as the demo sets them.
EXECUTOR = executor_settings(TIME_SCALE)


def write_settings(
    tmp: Path,
    sim: SimHandle,
    spec: Path,
    *,
    interval: float = 30.0,
    sections: dict[str, Any] | None = None,
) -> Path:
    """A settings file for ``provisiond run``/``apply`` against ``sim``. The metrics endpoint
    binds a free loopback port (the daemon logs it as ``metrics_serving``): daemons of parallel
    tests never collide on the default port. The single-instance lock (no leader election here)
    lives in ``tmp/state``, not /var/lib. ``sections`` adds or replaces settings sections."""
    tokenid, _, secret = sim.token.rpartition("=")
    secret_file = tmp / "token"
    secret_file.write_text(secret)
    cfg = tmp / "provisiond.yaml"
    cfg.write_text(
        json.dumps(
            {
                "proxmox": {
                    "url": sim.url,
                    "token_id": tokenid,
                    "token_secret_file": str(secret_file),
                    "ca_bundle": sim.ca_path,
                },
                "spec": {"paths": [str(spec)]},
                "executor": EXECUTOR,
                "log": {"format": "json", "level": "info"},
                "daemon": {"interval": interval, "state_dir": str(tmp / "state")},
                "metrics": {"bind": "127.0.0.1:0"},
            }
            | (sections or {})
        )
    )
    return cfg


def answered(sim: SimHandle, method: str, template: str) -> list[int]:
    """The statuses of the ``(method, template)`` requests the simulator answered, oldest first.
    A request whose sender died before it was whole (``kill -9`` mid-send: the simulator's read
    of its body fails with "Connection lost") never reached a handler and is not among them —
    ``SimHandle.requests`` counts it, as it counts every request that arrived."""
    return [r.status for r in sim.request_log(method, template) if r.status]


def in_process_settings(sim: SimHandle, spec: Path) -> Settings:
    """Settings for a daemon built in this process (``app.build_daemon``) against ``sim``."""
    tokenid, _, secret = sim.token.rpartition("=")
    return Settings(
        proxmox={
            "url": sim.url,
            "token_id": tokenid,
            "token_secret": secret,
            "ca_bundle": sim.ca_path,
        },  # type: ignore[arg-type]
        spec={"paths": [spec]},  # type: ignore[arg-type]
        executor=EXECUTOR,  # type: ignore[arg-type]
    )


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line being written
        return out

    def wait_for(self, pred: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if pred(e):
                    return e
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited {self.popen.returncode}:\n{self.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting; log tail:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; returns the seconds it took to exit."""
        started = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)
        self.popen.wait(timeout)
        return time.monotonic() - started


def start(
    tmp: Path,
    *args: str,
    name: str = "daemon",
    stdin: int | None = None,
    env: dict[str, str] | None = None,
) -> Proc:
    log = tmp / f"{name}-{time.monotonic_ns()}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("PROVISIOND_CONFIG", None)
    handle = log.open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "provisiond", *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        env=env,
    )
    handle.close()
    return Proc(popen, log)


def run_daemon(
    tmp: Path, cfg: Path, *extra: str, name: str = "daemon", env: dict[str, str] | None = None
) -> Proc:
    return start(
        tmp, "run", "--config", str(cfg), "--follow-up", "0.05", *extra, name=name, env=env
    )


def metrics_url(proc: Proc) -> str:
    """The daemon's metrics endpoint, from its ``metrics_serving`` log line (it bound port 0)."""
    event = proc.wait_for(lambda e: e.get("event") == "metrics_serving", timeout=30)
    return f"http://127.0.0.1:{event['port']}"


def converged(e: dict[str, Any]) -> bool:
    return (
        e.get("event") == "plan_ready"
        and e.get("actions") == 0
        and e.get("waiting") == 0
        and not e.get("unobserved")  # planned from a complete observation
    )


def example(name: str) -> Path:
    return EXAMPLES / name


def desired_of(name: str | Path) -> DesiredState:
    return load_desired([example(name) if isinstance(name, str) else name])


def check_world(sim: SimHandle, desired: DesiredState, *, stopped: Collection[int] = ()) -> None:
    """Each desired VM exists once, right size, owned, unlocked, running (``stopped``: those
    VMIDs stopped); no stray VMIDs."""
    want = {vm.vmid: vm for vm in desired.all_vms()}
    templates: set[int] = set()
    names: Counter[str] = Counter()
    for vmid in sim.vmids():
        vm = sim.vm(vmid)
        assert vm is not None
        cfg = vm.config
        if cfg.get("template"):
            templates.add(vmid)
            continue
        assert vmid in want, f"VMID {vmid} is not in the spec"
        names[str(cfg.get("name"))] += 1
        d = want[vmid]
        assert cfg.get("lock") is None, f"{vmid} locked: {cfg.get('lock')}"
        assert str(cfg.get("name")) == d.name
        assert int(str(cfg.get("cores"))) == d.cores, f"{vmid} cores {cfg.get('cores')}"
        assert int(str(cfg.get("memory"))) == d.memory_mib, f"{vmid} memory {cfg.get('memory')}"
        tags = str(cfg.get("tags", "")).split(";")
        owned = {"provisiond", f"pd-{d.fleet}"} <= set(tags) or "provisiond:" in str(
            cfg.get("description", "")
        )
        assert owned, f"{vmid} not owned: tags={tags}"
        want_status = "stopped" if vmid in stopped else "running"
        assert vm.status == want_status, f"{vmid} is {vm.status}"
    missing = set(want) - set(sim.vmids())
    assert not missing, f"missing VMs {sorted(missing)}"
    assert all(n == 1 for n in names.values()), names


GPU_PAIR_TOPOLOGY = {
    "apiVersion": "provisiond.dev/v1alpha1",
    "kind": "Topology",
    "metadata": {"name": "gpu-pair", "description": "two GPU hosts with the same PCI mapping"},
    "spec": {
        "hosts": [
            {
                "name": name,
                "cpus": 32,
                "memory": "128GiB",
                "pciDevices": [
                    {"address": "0000:01:00.0", "id": "10de:26b9", "name": "AD102GL [L40S]"}
                ],
            }
            for name in ("gpu-a", "gpu-b")
        ],
        "storages": [
            {"name": "local-lvm", "type": "lvmthin", "size": "1TB"},
            {"name": "shared-nfs", "type": "nfs", "shared": True, "size": "4TB"},
        ],
        "pciMappings": [
            {
                "id": "l40s",
                "liveMigrationCapable": False,
                "map": [
                    {"host": "gpu-a", "path": "0000:01:00.0", "id": "10de:26b9"},
                    {"host": "gpu-b", "path": "0000:01:00.0", "id": "10de:26b9"},
                ],
            }
        ],
        "pools": [{"name": "gpus"}],
        "templates": [
            {
                "name": "gpu-tmpl",
                "vmid": 9000,
                "host": "gpu-a",
                "storage": "shared-nfs",
                "machine": "q35",
                "ostype": "l26",
                "disks": [{"slot": "scsi0", "size": "32G"}],
            }
        ],
        "users": [{"id": "root@pam", "tokens": [{"id": "provisiond"}]}],
    },
}


def gpu_pair_fleet(maintenance: str) -> str:
    """One GPU VM (a Kubernetes node by default) on local storage; ``maintenance`` host
    evacuated. Kubernetes is not configured, so a move is shutdown, offline migrate, start."""
    return json.dumps(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Fleet",
            "metadata": {"name": "gpu-pair"},
            "spec": {
                "defaults": {
                    "template": "gpu-tmpl",
                    "storage": "local-lvm",
                    "pool": "gpus",
                    "bridge": "vmbr0",
                },
                "pools": [
                    {
                        "name": "gpu",
                        "cores": 8,
                        "memory": "32GiB",
                        "disks": [{"slot": "scsi0", "size": "64GiB"}],
                        "gpus": {"mapping": "l40s", "count": 1},
                        "vms": [{"name": "gpu-vm-01", "vmid": 3001}],
                    }
                ],
                "policy": {"maintenance": [maintenance]},
            },
        }
    )


def gpu_pair(tmp: Path) -> tuple[Path, Path]:
    """The gpu-pair topology file and a spec directory placing its VM on gpu-a."""
    topology = tmp / "gpu-pair-topology.json"
    topology.write_text(json.dumps(GPU_PAIR_TOPOLOGY))
    spec = tmp / "gpu-pair.d"
    spec.mkdir()
    (spec / "fleet.yaml").write_text(gpu_pair_fleet(maintenance="gpu-b"))
    return topology, spec
