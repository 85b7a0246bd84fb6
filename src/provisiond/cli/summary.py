"""The converge summary of ``apply`` and ``demo``: per VM host, state and GPUs; GPUs per host;
what is blocked or in conflict; actions taken. docs/demo.md documents the JSON form.

Pure: built from the last cycle's desired/observed state and plan plus the counted actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan

SUMMARY_FORMAT_VERSION = 1


def build_summary(
    *,
    converged: bool,
    seconds: float,
    desired: DesiredState | None,
    observed: ObservedState | None,
    plan: Plan | None,
    actions: Mapping[str, int],
    failed: Mapping[str, int] | None = None,
    cycles: int = 0,
    nodes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``nodes``: every Kubernetes Node (name, vm, ready, unschedulable, labels, taints as
    ``key=value:Effect``), as the sandbox's Kubernetes simulator lists them."""
    seen = {vm.vmid: vm for vm in observed.vms} if observed is not None else {}
    vms: list[dict[str, Any]] = []
    for d in desired.all_vms() if desired is not None else ():
        vm = seen.get(d.vmid)
        gpus: list[str] = []
        if vm is not None:
            for mapping, n in sorted(vm.gpu_claims().items()):
                gpus.extend([mapping] * n)
        vms.append(
            {
                "name": d.name,
                "vmid": d.vmid,
                "fleet": d.fleet,
                "pool": d.pool,
                "host": vm.host if vm is not None else None,
                "status": vm.status.value if vm is not None else "missing",
                "gpus": gpus,
            }
        )
    gpus_by_host: dict[str, dict[str, dict[str, int]]] = {}
    if observed is not None:
        for host in observed.hosts:
            per: dict[str, dict[str, int]] = {}
            for m in observed.mappings:
                total = m.devices_on(host.name)
                if total:
                    per[m.id] = {"claimed": 0, "total": total}
            for vm in observed.vms:
                if vm.host != host.name or vm.template:
                    continue
                for mapping, n in vm.gpu_claims().items():
                    entry = per.setdefault(mapping, {"claimed": 0, "total": 0})
                    entry["claimed"] += n
            if per:
                gpus_by_host[host.name] = dict(sorted(per.items()))
    return {
        "format_version": SUMMARY_FORMAT_VERSION,
        "converged": converged,
        "seconds": round(seconds, 3),
        "cycles": cycles,
        "vms": vms,
        "gpus_by_host": gpus_by_host,
        "blocked": [
            {"code": b.code, "vm": b.name, "vmid": b.vmid, "fleet": b.fleet, "reason": b.reason}
            for b in (plan.blocked if plan is not None else ())
        ],
        "conflicts": [
            {"vm": c.name, "vmid": c.vmid, "fleet": c.fleet, "reason": c.reason}
            for c in (plan.conflicts if plan is not None else ())
        ],
        "waiting": [
            {"vm": w.name, "vmid": w.vmid, "reason": w.reason}
            for w in (plan.waiting if plan is not None else ())
        ],
        "remaining_actions": len(plan.actions) if plan is not None else None,
        "actions": dict(sorted(actions.items())),
        "failed_actions": dict(sorted((failed or {}).items())),
        "nodes": sorted(nodes or [], key=lambda n: str(n.get("name", ""))),
    }


def print_summary(summary: Mapping[str, Any], console: Console) -> None:
    state = "converged" if summary["converged"] else "not converged"
    console.print(
        f"\n[bold]{state}[/] in {summary['seconds']:.1f} s "
        f"({summary['cycles']} cycle{'s' if summary['cycles'] != 1 else ''})"
    )
    nodes = summary.get("nodes") or []
    node_of = {n["vm"]: n for n in nodes if n.get("vm") is not None}
    table = Table(show_edge=False, pad_edge=False)
    for col in ("VM", "VMID", "host", "state", "GPUs", *(("node",) if nodes else ())):
        table.add_column(col)
    for vm in summary["vms"]:
        gpus = ", ".join(f"{n} x {m}" for m, n in _count(vm["gpus"]).items()) or "-"
        row = [escape(vm["name"]), str(vm["vmid"]), escape(vm["host"] or "-"), vm["status"], gpus]
        if nodes:
            row.append(_node_state(node_of.get(vm["vmid"])))
        table.add_row(*row)
    console.print(table)
    if nodes:
        _print_nodes(nodes, console)
    for host, per in summary["gpus_by_host"].items():
        parts = ", ".join(f"{m} {v['claimed']}/{v['total']}" for m, v in per.items())
        console.print(f"GPUs on {escape(host)}: {escape(parts)} claimed")
    for b in summary["blocked"]:
        who = f"{b['vm']} ({b['vmid']})" if b["vm"] else (b["fleet"] or "fleet")
        console.print(f"[magenta]blocked[/] {escape(who)} [{b['code']}]: {escape(b['reason'])}")
    for c in summary["conflicts"]:
        console.print(f"[red]conflict[/] {escape(c['vm'])} ({c['vmid']}): {escape(c['reason'])}")
    done = ", ".join(f"{n} {k}" for k, n in summary["actions"].items()) or "none"
    console.print(f"actions taken: {escape(done)}")
    if summary["failed_actions"]:
        failed = ", ".join(f"{n} {k}" for k, n in summary["failed_actions"].items())
        console.print(f"[red]actions failed:[/] {escape(failed)}")


def _node_state(node: Mapping[str, Any] | None) -> str:
    if node is None:
        return "-"
    state = "Ready" if node["ready"] else "NotReady"
    return escape(
        f"{node['name']} {state}" + (",SchedulingDisabled" if node["unschedulable"] else "")
    )


def _print_nodes(nodes: list[Mapping[str, Any]], console: Console) -> None:
    """Every Node with its labels (the kubelet's ``kubernetes.io`` ones left out) and taints."""
    table = Table(show_edge=False, pad_edge=False)
    for col in ("node", "VMID", "ready", "labels", "taints"):
        table.add_column(col)
    for n in nodes:
        labels = ", ".join(
            f"{k}={v}" for k, v in sorted(n["labels"].items()) if "kubernetes.io/" not in k
        )
        table.add_row(
            escape(n["name"]),
            str(n["vm"]) if n.get("vm") is not None else "-",
            "yes" if n["ready"] else "no",
            escape(labels or "-"),
            escape(", ".join(n["taints"]) or "-"),
        )
    console.print(table)


def _count(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out
