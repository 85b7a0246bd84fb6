"""Failover time after ``kill -9`` of the leader: two real ``provisiond run`` processes elect a
leader on the Kubernetes simulator's Lease and manage cps-gpu on the Proxmox simulator (both in
this process; each daemon has its own API token so the request log says who acted).

Each trial: the leader is killed with SIGKILL and, at the same moment, one VM is stopped by
hand. Measured from the kill: when the standby logs ``leader_acquired`` and when its
``POST …/status/start`` for that VM reaches Proxmox (it acts). A fresh replica then joins as
the next standby and the next trial kills the new leader.

Expected: takeover <= lease_duration + 1.2 x retry_period after the last renew, so from the kill
between lease - retry and lease + 1.2 x retry; acting adds one cycle (observe + plan + POST).

    .venv/bin/python bench/leader_failover.py [--trials 5] [--lease 15 --renew 10 --retry 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provisiond.cli.sandbox import executor_settings
from provisiond.sim.kube import KubeSim
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

START = "/nodes/{node}/qemu/{vmid}/status/start"


class Replica:
    def __init__(self, pve: SimHandle, kubeconfig: Path, tmp: Path, name: str, args: Any) -> None:
        full = pve.add_token("root@pam", name)
        self.token, _, secret = full.rpartition("=")
        self.name = name
        (tmp / f"{name}.secret").write_text(secret)
        cfg = tmp / f"{name}.json"
        cfg.write_text(
            json.dumps(
                {
                    "proxmox": {
                        "url": pve.url,
                        "token_id": self.token,
                        "token_secret_file": str(tmp / f"{name}.secret"),
                        "ca_bundle": pve.ca_path,
                    },
                    "spec": {"paths": [str(EXAMPLES / "cps-gpu")]},
                    "daemon": {"interval": 30.0, "state_dir": str(tmp / "state")},
                    "executor": executor_settings(0.01),
                    "log": {"format": "json", "level": "info"},
                    "metrics": {"bind": "127.0.0.1:0"},  # replicas on one machine: a free port
                    "kubernetes": {"kubeconfig": str(kubeconfig)},
                    "leader_election": {
                        "lease_duration": args.lease,
                        "renew_deadline": args.renew,
                        "retry_period": args.retry,
                    },
                }
            )
        )
        self.log = tmp / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "provisiond", "run", "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "POD_NAME": name, "PYTHONUNBUFFERED": "1"},
            )

    def has(self, event: str) -> bool:
        return any(
            line.startswith("{") and json.loads(line).get("event") == event
            for line in self.log.read_text(errors="replace").splitlines()
            if line.endswith("}")
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def wait(pred: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pred():
            return time.monotonic() - started
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--lease", type=float, default=15.0)
    p.add_argument("--renew", type=float, default=10.0)
    p.add_argument("--retry", type=float, default=2.0)
    args = p.parse_args()
    acquired: list[float] = []
    acted: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmpname,
        running_simulator("cps-gpu", time_scale=0.01) as pve,
        KubeSim() as kube,
    ):
        tmp = Path(tmpname)
        kube.start()
        kubeconfig = kube.write_kubeconfig(tmp / "kubeconfig")
        replicas = [Replica(pve, kubeconfig, tmp, f"r{i}", args) for i in range(2)]
        try:
            wait(lambda: any(r.has("leader_acquired") for r in replicas), 60, "a leader")
            # converged: nothing mutating for 3 s
            last = -1
            while (n := len([r for r in pve.request_log() if r.method != "GET"])) != last:
                last = n
                time.sleep(3)
            for trial in range(args.trials):
                leader = next(r for r in replicas if r.has("leader_acquired"))
                standby = next(r for r in replicas if r is not leader)
                vmid = next(v for v in pve.vmids() if (vm := pve.vm(v)) and vm.status == "running")
                mark = len(pve.request_log())
                killed = time.monotonic()
                leader.kill()
                pve.set_power(vmid, "stopped")
                a = wait(lambda s=standby: s.has("leader_acquired"), 3 * args.lease, "takeover")
                wait(
                    lambda s=standby, m=mark: any(
                        r.authid == s.token and r.template == START for r in pve.request_log()[m:]
                    ),
                    3 * args.lease,
                    "the new leader to act",
                )
                b = time.monotonic() - killed
                acquired.append(a)
                acted.append(b)
                print(f"trial {trial + 1}: lease taken after {a:.2f} s, acted after {b:.2f} s")
                replicas.remove(leader)
                replicas.append(Replica(pve, kubeconfig, tmp, f"r{trial + 2}", args))
                wait(lambda r=replicas[-1]: r.has("leader_standby"), 30, "the new standby")
        finally:
            for r in replicas:
                r.kill()

    def stats(xs: list[float]) -> str:
        return (
            f"min {min(xs):.2f} / median {statistics.median(xs):.2f} / max {max(xs):.2f} s "
            f"(n={len(xs)})"
        )

    print(f"durations: lease {args.lease} s, renew deadline {args.renew} s, retry {args.retry} s")
    print(f"kill -9 → standby holds the lease: {stats(acquired)}")
    print(f"kill -9 → standby's first mutating request: {stats(acted)}")


if __name__ == "__main__":
    main()
