"""The daemon at scale (issue 13.9): ``provisiond run`` against a generated 10,000-VM cluster.

    .venv/bin/python bench/daemon_scale.py                      # 10,000 VMs / 200 hosts, own 5,000
    .venv/bin/python bench/daemon_scale.py --owned 10000 --ttls 2

Two processes, as in production: the simulator (``provisiond sim serve`` on a topology from
``sim/pve/generator.py``, seed 1, written to a temporary directory) and the daemon
(``provisiond run`` with a settings file and a generated fleet spec). The fleet owns the first
``--owned`` generated VMs (VMIDs from 1000, names ``vm-<vmid>``) with ``policy.adopt: true``
and every other setting at its default (4 actions in flight, 2 per host); each member's spec is
what the generator gave that VM (cores, memory, its own tags, its GPU, stopped when stopped), so
adopting it is one write: the ownership tags. The rest of the cluster is foreign and observed
only.

``daemon.interval``, ``daemon.cache_ttl`` and ``daemon.foreign_cache_ttl`` are the defaults
(60 s, 300 s, 1,800 s), times ``--scale`` if given. Scaling them down does not keep a cycle's
cost: a cycle's own time does not scale, and the configs alone come due at ``owned / cache_ttl
+ foreign / foreign_cache_ttl`` reads per second (with one TTL for all, 10,000 VMs and a 60 s
TTL made 167 — more than this machine served, so every cycle read everything); with ``--scale``
the per-cycle counts for the defaults are estimated from the measured cycle times
(``defaults_estimate``).

Measured, by reading the daemon's JSON log line by line as it is written: adoption (from the
daemon's start to the first plan with no action; the tags written, ``action_finished`` events);
then, for ``--ttls`` cache TTLs of steady cycles (after one cycle that re-reads the VMs the
adoption wrote to): after each ``reconcile_finished`` the daemon's own ``/metrics`` is scraped
(``provisiond_proxmox_requests_total`` — every request it made, by endpoint; the next cycle is
``interval`` seconds away, so the difference between two scrapes is one cycle) and its RSS is
read from ``/proc/<pid>/status`` (``VmRSS``). Results go to docs/performance.md ("Daemon at
scale") by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from provisiond.core.topology import Topology
from provisiond.sim.pve.generator import generate
from provisiond.sim.pve.snapshot import to_yaml

DEFAULT_INTERVAL = 60.0  # daemon.interval default
DEFAULT_TTL = 300.0  # daemon.cache_ttl default
DEFAULT_FOREIGN_TTL = 1800.0  # daemon.foreign_cache_ttl default
PER_HOST = ("/nodes/{node}/storage", "/nodes/{node}/hardware/pci")
CONFIG = "/nodes/{node}/qemu/{vmid}/pending"


@dataclass
class Cycle:
    seconds: float
    result: str
    actions: int
    requests: Counter[str]
    rss_mib: float


@dataclass
class Run:
    started: float
    cycles: list[Cycle] = field(default_factory=list)
    tags_written: int = 0
    adopted_at: float | None = None
    first_plan_actions: int | None = None


def fleet(topology: Topology, owned: int) -> dict[str, Any]:
    vms = []
    for vm in topology.spec.vms[:owned]:
        member: dict[str, Any] = {
            "name": vm.name,
            "vmid": vm.vmid,
            "cores": vm.cores,
            "memory": f"{vm.memory >> 20}MiB",
            "tags": list(vm.tags),
        }
        if vm.hostpci:
            member["gpus"] = {"mapping": "gpu", "count": len(vm.hostpci)}
        if vm.status.value != "running":
            member["power"] = "stopped"
        vms.append(member)
    return {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "scale"},
        "spec": {
            "defaults": {
                "template": "tmpl",
                "storage": "shared-nfs",
                "kubernetes": {"node": False},
            },
            "pools": [{"name": "adopted", "vms": vms}],
            "policy": {"adopt": True},
        },
    }


async def lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    while line := await stream.readline():
        yield line.decode()


@contextlib.asynccontextmanager
async def simulator(topology_file: Path, log: Path) -> AsyncIterator[dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "provisiond",
        "sim",
        "serve",
        "--topology",
        str(topology_file),
        "--time-scale",
        "0.01",
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("w"),
    )
    assert proc.stdout is not None
    try:
        endpoint: dict[str, str] = {}
        async for line in lines(proc.stdout):
            key, _, value = line.strip().partition(": ")
            if key in ("url", "ca", "token"):
                endpoint[key] = value
            if len(endpoint) == 3:
                break
        if len(endpoint) != 3:
            raise SystemExit(f"simulator did not start: see {log}")
        yield endpoint
    finally:
        proc.terminate()
        await proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def requests_by_endpoint(http: aiohttp.ClientSession, url: str) -> Counter[str]:
    async with http.get(url) as r:
        text = await r.text()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "provisiond_proxmox_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[f"{sample.labels['method']} {sample.labels['endpoint']}"] += int(
                        sample.value
                    )
    return counts


async def daemon(settings_file: Path, run: Run, *, steady_for: float, log: Path) -> None:
    """Run the daemon, reading its JSON log (stderr) as it comes; a copy goes to ``log``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "provisiond",
        "run",
        "--config",
        str(settings_file),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    metrics_url = ""
    last: Counter[str] = Counter()
    actions = 0
    steady_since: float | None = None
    copy = log.open("w")
    try:
        async with aiohttp.ClientSession() as http:
            async for line in lines(proc.stderr):
                copy.write(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                name = event.get("event")
                if name == "metrics_serving":
                    metrics_url = f"http://127.0.0.1:{event['port']}/metrics"
                elif name == "plan_ready":
                    actions = int(event["actions"])
                    if run.first_plan_actions is None:
                        run.first_plan_actions = actions
                    if actions == 0 and run.adopted_at is None:
                        run.adopted_at = time.monotonic()
                        print(f"adopted after {run.adopted_at - run.started:.1f} s", flush=True)
                elif name == "action_finished" and event.get("kind") == "configure":
                    run.tags_written += 1
                elif name in ("action_failed", "reconcile_failed", "spec_invalid"):
                    print(line.strip(), flush=True)
                elif name == "reconcile_finished":
                    now = await requests_by_endpoint(http, metrics_url)
                    cycle = Cycle(
                        float(event["seconds"]),
                        str(event["result"]),
                        actions,
                        now - last,
                        rss_mib(proc.pid),
                    )
                    last = now
                    run.cycles.append(cycle)
                    print(
                        f"cycle {len(run.cycles)}: {cycle.seconds:.2f} s, {cycle.result}, "
                        f"{cycle.actions} actions, {cycle.requests.total()} requests, "
                        f"RSS {cycle.rss_mib:.0f} MiB",
                        flush=True,
                    )
                    if run.adopted_at is not None and steady_since is None:
                        steady_since = time.monotonic()
                    if steady_since is not None and time.monotonic() - steady_since > steady_for:
                        break
    finally:
        proc.terminate()
        await proc.wait()
        copy.close()


def defaults_estimate(steady: list[Cycle], vms: int, owned: int, hosts: int) -> str:
    """Requests per cycle with the default interval and TTLs, from the measured cycle times.

    Each owned VM's config, each host's two lists and the mappings are read once per TTL, each
    foreign VM's config once per foreign TTL; per cycle that is (count) * (cycle period) / TTL
    on average, the period being ``interval`` plus the cycle's own time (which does not scale).
    The two cluster-wide lists come every cycle."""
    period = DEFAULT_INTERVAL + statistics.mean(c.seconds for c in steady)
    share = period / DEFAULT_TTL
    configs = owned * share + (vms - owned) * period / DEFAULT_FOREIGN_TTL
    return (
        f"with the defaults ({DEFAULT_INTERVAL:.0f} s + a {period - DEFAULT_INTERVAL:.1f} s "
        f"cycle, TTLs {DEFAULT_TTL:.0f} s / foreign {DEFAULT_FOREIGN_TTL:.0f} s): "
        f"{2 + configs + (2 * hosts + 1) * share:.0f} requests per cycle on average "
        f"({configs:.0f} config reads, {2 * hosts * share:.0f} host lists)"
    )


def report(run: Run, args: argparse.Namespace) -> None:
    assert run.adopted_at is not None
    print(
        f"\nadoption: {run.adopted_at - run.started:.1f} s from the daemon's start to a plan with"
        f" no action; {run.tags_written} VMs tagged (first plan: {run.first_plan_actions} actions)"
    )
    # The first cycle planning nothing re-reads the configs the adoption wrote: not steady.
    settled = next(i for i, c in enumerate(run.cycles) if not c.actions)
    for i, c in enumerate(run.cycles[: settled + 1], 1):
        top = ", ".join(f"{k} {v}" for k, v in c.requests.most_common(4))
        print(f"  cycle {i}: {c.seconds:.1f} s, {c.actions} actions, {c.requests.total()}: {top}")
    steady = run.cycles[settled + 1 :]
    if not steady:
        print("no steady cycles measured")
        return
    totals = [c.requests.total() for c in steady]
    per_host = [sum(c.requests[f"GET {p}"] for p in PER_HOST) for c in steady]
    configs = [c.requests[f"GET {CONFIG}"] for c in steady]
    seconds = [c.seconds for c in steady]
    rss = [c.rss_mib for c in steady]
    results = Counter(c.result for c in steady)
    print(f"steady: {len(steady)} cycles ({', '.join(f'{n} {r}' for r, n in results.items())})")
    print(
        f"  requests per cycle: mean {statistics.mean(totals):.0f}, min {min(totals)}, "
        f"max {max(totals)}; config reads mean {statistics.mean(configs):.0f} "
        f"(min {min(configs)}, max {max(configs)}); host lists mean "
        f"{statistics.mean(per_host):.0f} (min {min(per_host)}, max {max(per_host)})"
    )
    print(f"  requests per cycle: {totals}")
    print(f"  host lists per cycle: {per_host}")
    print(
        f"  cycle time: mean {statistics.mean(seconds):.2f} s, median "
        f"{statistics.median(seconds):.2f} s, min {min(seconds):.2f} s, max {max(seconds):.2f} s"
    )
    print(f"  daemon RSS: mean {statistics.mean(rss):.0f} MiB, max {max(rss):.0f} MiB")
    if args.scale != 1:
        print("  " + defaults_estimate(steady, args.vms, min(args.owned, args.vms), args.hosts))


async def main_async(args: argparse.Namespace) -> None:
    topology = generate(hosts=args.hosts, vms=args.vms, gpus=args.gpus, seed=1)
    interval, ttl = DEFAULT_INTERVAL * args.scale, DEFAULT_TTL * args.scale
    foreign_ttl = DEFAULT_FOREIGN_TTL * args.scale
    with tempfile.TemporaryDirectory(prefix="daemon-scale-") as tmp:
        d = Path(tmp)
        (d / "topology.yaml").write_text(to_yaml(topology))
        (d / "fleet.yaml").write_text(json.dumps(fleet(topology, args.owned)))
        print(
            f"{args.vms:,} VMs on {args.hosts} hosts ({args.gpus} GPUs), {args.owned:,} owned;"
            f" interval {interval:g} s, cache_ttl {ttl:g} s, foreign_cache_ttl {foreign_ttl:g} s;"
            f" logs in {d}",
            flush=True,
        )
        async with simulator(d / "topology.yaml", d / "sim.log") as sim:
            token_id, _, secret = sim["token"].rpartition("=")
            settings = {
                "proxmox": {
                    "url": sim["url"],
                    "ca_bundle": sim["ca"],
                    "token_id": token_id,
                    "token_secret": secret,
                    "read_timeout": 120,
                },
                "log": {"format": "json", "level": "info"},
                "spec": {"paths": [str(d / "fleet.yaml")]},
                "daemon": {
                    "interval": interval,
                    "cache_ttl": ttl,
                    "foreign_cache_ttl": foreign_ttl,
                },
                "metrics": {"bind": "127.0.0.1:0"},
            }
            (d / "settings.yaml").write_text(json.dumps(settings))
            run = Run(started=time.monotonic())
            await daemon(d / "settings.yaml", run, steady_for=args.ttls * ttl, log=d / "daemon.log")
        report(run, args)
        if args.keep:
            shutil.copytree(d, args.keep)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vms", type=int, default=10_000)
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--gpus", type=int, default=200)
    p.add_argument("--owned", type=int, default=5_000)
    p.add_argument("--scale", type=float, default=1.0, help="interval and TTL times this")
    p.add_argument("--ttls", type=float, default=1.5, help="steady TTLs to measure")
    p.add_argument("--keep", help="copy the run's directory (logs, spec) here")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
