"""Convergence from empty: N VMs (default 100) cloned, configured and started by the daemon.

The simulator (cps-gpu topology: one host, a 32 GiB template) runs in this process with its
realistic task durations scaled by ``--time-scale``; the daemon's reconciler drives it through
the real proxmoxer client. Reported: wall time to convergence against the lower bound implied by
the simulated task times and the configured concurrency, requests issued, retries, peak RSS.

Lower bound: every VM needs a full clone (15 s + 0.1 s/GiB copied), a config write (synchronous)
and a start (3 s), in that order; with ``S`` action slots (min of maxConcurrentActions and
maxConcurrentPerHost x hosts) the makespan is at least max(one VM's chain, total task time / S).

Requests per created VM: every request of the run (observations included) divided by the VMs
created. ``--polling real`` (default) scales every executor delay with the task times
(``ExecutorConfig().scaled``), so a task is polled as often as against real Proxmox;
``--polling daemon`` uses what ``provisiond demo`` uses (``daemon.executor_config``). After
convergence, ``--steady N`` more cycles are run on the converged fleet and their requests per
cycle reported (caches warm: the two cluster-wide lists; no config TTL expires meanwhile).

    .venv/bin/python bench/converge.py [--vms 100] [--time-scale 0.02] [--slots 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import structlog

from provisiond import app
from provisiond.cli.sandbox import executor_settings
from provisiond.runtime.executor import ExecutorConfig
from provisiond.runtime.results import ActionResult
from provisiond.settings import Settings
from provisiond.sim.pve.tasks import CLONE_FULL_MAX, CLONE_SECONDS_PER_GIB, DURATIONS
from provisiond.sim.pve.testing import running_simulator

TEMPLATE_GIB = 32  # cps-gpu's k3s-node-tmpl scsi0

FLEET = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {{name: bench}}
spec:
  defaults:
    template: k3s-node-tmpl
    storage: local-nvme
    bridge: vmbr0
  placement:
    hosts: [cit-gpu-01]
  pools:
    - name: workers
      count: {n}
      namePattern: "bench{{index:03d}}"
      vmidRange: {{start: 3000, end: {end}}}
      cores: 1
      memory: 1GiB
  policy:
    maxConcurrentActions: {slots}
    maxConcurrentPerHost: {slots}
"""


class Counter:
    def __init__(self) -> None:
        self.actions = 0

    def plan_started(self, plan: object) -> None:
        pass

    def action_started(self, action: object) -> None:
        del action
        self.actions += 1

    def action_finished(self, result: ActionResult) -> None:
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vms", type=int, default=100)
    p.add_argument("--time-scale", type=float, default=0.02)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--polling", choices=("real", "daemon"), default="real")
    p.add_argument("--steady", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    clone = min(
        CLONE_FULL_MAX, DURATIONS["qmclone-full-base"] + CLONE_SECONDS_PER_GIB * TEMPLATE_GIB
    )
    chain = (clone + DURATIONS["qmstart"]) * args.time_scale
    # Clones and starts share the slots; the order within a VM is fixed.
    bound = max(chain, math.ceil(args.vms / args.slots) * chain)

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_simulator("cps-gpu", time_scale=args.time_scale) as sim,
    ):
        spec = Path(tmp) / "fleet.yaml"
        spec.write_text(FLEET.format(n=args.vms, end=3000 + args.vms - 1, slots=args.slots))
        tokenid, _, secret = sim.token.rpartition("=")
        settings = Settings(
            proxmox={
                "url": sim.url,
                "token_id": tokenid,
                "token_secret": secret,  # type: ignore[arg-type]
                "ca_bundle": sim.ca_path,
                "max_concurrent_requests": 8,
            },
            spec={"paths": [spec]},  # type: ignore[arg-type]
            executor=executor_settings(args.time_scale),  # type: ignore[arg-type]
        )
        counter = Counter()
        built = app.build_daemon(settings, action_listener=counter)
        if args.polling == "real":
            built.executor.config = ExecutorConfig().scaled(args.time_scale)
        steady: list[int] = []
        at_convergence: dict[tuple[str, str], int] = {}

        async def converge() -> tuple[float, int]:
            started = time.perf_counter()
            cycles = 0
            while True:
                result = await built.reconciler.cycle()
                cycles += 1
                if result.error:
                    raise SystemExit(f"cycle failed: {result.error}")
                if result.converged:
                    took = time.perf_counter() - started
                    at_convergence.update(sim.request_counts())
                    for _ in range(args.steady):  # a re-run of the converged fleet
                        before = sum(sim.request_counts().values())
                        again = await built.reconciler.cycle()
                        assert again.converged, again
                        steady.append(sum(sim.request_counts().values()) - before)
                    return took, cycles
                if cycles > 50:
                    raise SystemExit("did not converge in 50 cycles")

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
        seconds, cycles = asyncio.run(converge())
        counts = at_convergence
        built.close()
    mutating = {f"{m} {t}": n for (m, t), n in counts.items() if m != "GET"}  # none in steady
    expected = 3 * args.vms  # clone POST, config PUT, start POST per VM
    result = {
        "vms": args.vms,
        "time_scale": args.time_scale,
        "slots": args.slots,
        "seconds": round(seconds, 3),
        "lower_bound_seconds": round(bound, 3),
        "ratio": round(seconds / bound, 3),
        "cycles": cycles,
        "actions": counter.actions,
        "polling": args.polling,
        "requests_total": sum(counts.values()),
        "requests_per_vm": round(sum(counts.values()) / args.vms, 2),
        "requests_by_endpoint": dict(
            sorted(
                ((f"{m} {t}", n) for (m, t), n in counts.items()),
                key=lambda kv: -kv[1],
            )
        ),
        "steady_requests_per_cycle": steady,
        "requests_mutating": sum(mutating.values()),
        "retries": sum(mutating.values()) - expected,
        "mutating": mutating,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
