"""How plans look to people and scripts: terraform-like text, and the JSON of docs/plan-format.md.

Pure functions from core values to a dict or to lines; colour is applied by ``rich`` only when
the console is a terminal. Used by ``plan``, ``apply`` and ``demo`` so they show the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape

from provisiond.core import actions as act
from provisiond.core.desired import DesiredState
from provisiond.core.plan import Plan

PLAN_FORMAT_VERSION = 1

# marker, colour per action kind (terraform's + ~ - plus → for moves)
_MARKS: dict[str, tuple[str, str]] = {
    "clone": ("+", "green"),
    "configure": ("~", "yellow"),
    "grow_disk": ("~", "yellow"),
    "start": ("~", "yellow"),
    "shutdown": ("~", "yellow"),
    "reboot": ("~", "yellow"),
    "label": ("~", "yellow"),
    "taint": ("~", "yellow"),
    "cordon": ("~", "yellow"),
    "drain": ("~", "yellow"),
    "uncordon": ("~", "yellow"),
    "migrate": ("→", "cyan"),
    "gpu_move": ("→", "cyan"),
    "destroy": ("-", "red"),
    "ha_rule_create": ("+", "green"),
    "ha_rule_update": ("~", "yellow"),
    "ha_rule_delete": ("-", "red"),
}
_VERBS = {
    "clone": "to clone",
    "configure": "to configure",
    "grow_disk": "to grow",
    "start": "to start",
    "shutdown": "to shut down",
    "reboot": "to reboot",
    "label": "to label",
    "taint": "to taint",
    "cordon": "to cordon",
    "drain": "to drain",
    "uncordon": "to uncordon",
    "migrate": "to migrate",
    "gpu_move": "to move offline",
    "destroy": "to destroy",
    "ha_rule_create": "HA rule(s) to create",
    "ha_rule_update": "HA rule(s) to update",
    "ha_rule_delete": "HA rule(s) to delete",
}


def _gpus_by_vmid(desired: DesiredState | None) -> dict[int, list[str]]:
    if desired is None:
        return {}
    return {
        vm.vmid: [vm.gpus.mapping] * vm.gpus.count
        for vm in desired.all_vms()
        if vm.gpus is not None
    }


def action_target(action: act.Action) -> tuple[str | None, int | None, str | None]:
    """(vm or node name, vmid, host) an action is about; an HA rule action: (rule id, None,
    None)."""
    match action:
        case act.HaRuleCreate() | act.HaRuleUpdate() | act.HaRuleDelete():
            return action.name, None, None  # the rule id
        case act.Cordon() | act.Drain() | act.Uncordon() | act.Label() | act.TaintNode():
            return action.node, action.vmid, None
        case _:
            return action.name, action.vmid, act.hosts_of(action)[-1]  # a migration's target


def _details(action: act.Action) -> dict[str, Any]:
    match action:
        case act.Clone():
            return {
                "template_vmid": action.template_vmid,
                "full": action.full,
                "storage": action.storage,
                "pool": action.proxmox_pool,
            }
        case act.Migrate():
            return {"source": action.source, "online": action.online}
        case act.GpuMove():
            return {"source": action.source, "steps": [str(s) for s in action.steps]}
        case act.Configure():
            return {"values": dict(action.values), "delete": list(action.delete)}
        case act.GrowDisk():
            return {"disk": action.disk, "size_bytes": action.size_bytes}
        case act.Reboot():
            return {"keys": list(action.keys)}
        case act.Label():
            return {"labels": dict(action.labels), "remove": list(action.remove)}
        case act.TaintNode():
            return {"add": [str(t) for t in action.add], "remove": [str(t) for t in action.remove]}
        case act.HaRuleCreate() | act.HaRuleUpdate() | act.HaRuleDelete():
            r = action.rule
            return {
                "rule": r.rule,
                "type": r.type,
                "resources": sorted(r.vmids),
                "nodes": [n for n, _ in r.nodes],
                "strict": r.strict,
                "affinity": r.affinity,
                "fleet": action.fleet,
            }
        case _:
            return {}


def node_change(action: act.Action) -> str | None:
    """A Kubernetes node action as one line: ``k3s-wk-gpu1 labels +gpu-model=a100, -old`` or
    ``k3s-wk-gpu1 cordon: <reason>``; ``None`` for Proxmox actions. Label and taint lines are
    their own reason (the spec's keys differ from the node's), unless only the record changes."""
    match action:
        case act.Label():
            items = [f"+{k}={v}" for k, v in action.labels.items()]
            items += [f"-{k}" for k in action.remove]
            what = ", ".join(items) if items else f"recorded as managed: {action.reason}"
            return f"{action.node} labels {what}"
        case act.TaintNode():
            items = [f"+{t}" for t in action.add] + [f"-{t}" for t in action.remove]
            return f"{action.node} taints {', '.join(items)}"
        case act.Cordon() | act.Drain() | act.Uncordon():
            return f"{action.node} {action.kind}: {action.reason}"
        case _:
            return None


def plan_to_json(
    plan: Plan, desired: DesiredState | None = None, *, warnings: Iterable[str] = ()
) -> dict[str, Any]:
    """The plan as documented in docs/plan-format.md."""
    gpus = _gpus_by_vmid(desired)
    actions = []
    for a in plan.actions:
        vm, vmid, host = action_target(a)
        with_gpus = isinstance(a, act.Clone | act.Configure | act.GpuMove | act.Start)
        actions.append(
            {
                "id": a.id,
                "action": a.kind,
                "vm": vm,
                "vmid": vmid,
                "host": host,
                "gpus": gpus.get(vmid, []) if vmid is not None and with_gpus else [],
                "reason": a.reason,
                "after": list(a.after),
                "details": _details(a),
            }
        )
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "actions": actions,
        "blocked": [
            {"code": b.code, "vm": b.name, "vmid": b.vmid, "fleet": b.fleet, "reason": b.reason}
            for b in plan.blocked
        ],
        "conflicts": [
            {"vm": c.name, "vmid": c.vmid, "fleet": c.fleet, "reason": c.reason}
            for c in plan.conflicts
        ],
        "waiting": [{"vm": w.name, "vmid": w.vmid, "reason": w.reason} for w in plan.waiting],
        "warnings": list(warnings),
        "summary": summary_counts(plan),
    }


def summary_counts(plan: Plan) -> dict[str, int]:
    counts = Counter(a.kind for a in plan.actions)
    return {
        "actions": len(plan.actions),
        **{k: counts[k] for k in sorted(counts)},
        "blocked": len(plan.blocked),
        "conflicts": len(plan.conflicts),
        "waiting": len(plan.waiting),
    }


def summary_line(plan: Plan) -> str:
    """``3 to clone, 2 to configure, 1 to migrate, 1 blocked`` (or ``No changes.``)."""
    counts = Counter(a.kind for a in plan.actions)
    parts = [f"{counts[k]} {_VERBS.get(k, k)}" for k in _MARKS if counts[k]]
    if plan.blocked:
        parts.append(f"{len(plan.blocked)} blocked")
    if plan.conflicts:
        parts.append(f"{len(plan.conflicts)} conflict{'s' if len(plan.conflicts) != 1 else ''}")
    if plan.waiting:
        parts.append(f"{len(plan.waiting)} in progress")
    return ", ".join(parts) if parts else "No changes. The cluster matches the spec."


def print_plan(
    plan: Plan, console: Console, desired: DesiredState | None = None, warnings: Iterable[str] = ()
) -> None:
    """Terraform-like: actions grouped per VM with markers and reasons, then what is not done."""
    gpus = _gpus_by_vmid(desired)
    for text in warnings:
        console.print(f"[bold yellow]warning:[/] {escape(text)}")
    groups: dict[tuple[int | None, str | None], list[act.Action]] = {}
    for a in plan.actions:
        vm, vmid, _ = action_target(a)
        groups.setdefault((vmid, vm), []).append(a)
    for (vmid, vm), actions in groups.items():
        title = f"{vm} ({vmid})" if vmid is not None else f"HA rule {vm}"
        gpu_note = f"  [dim]gpus: {', '.join(gpus[vmid])}[/]" if vmid in gpus else ""
        console.print(f"[bold]{escape(title)}[/]{gpu_note}")
        for a in actions:
            mark, colour = _MARKS.get(a.kind, ("~", "yellow"))
            change = node_change(a)
            if change is not None:
                console.print(f"  [{colour}]{mark} node[/] {escape(change)}")
                continue
            _, _, host = action_target(a)
            on = f" on {host}" if host else ""
            console.print(f"  [{colour}]{mark} {a.kind}[/]{escape(on)}: {escape(a.reason)}")
    if plan.waiting:
        console.print("[bold]In progress (nothing to do):[/]")
        for w in plan.waiting:
            console.print(f"  [dim]… {escape(w.name)} ({w.vmid}): {escape(w.reason)}[/]")
    if plan.blocked:
        console.print("[bold]Blocked:[/]")
        for b in plan.blocked:
            who = f"{b.name} ({b.vmid})" if b.name else (b.fleet or "fleet")
            console.print(
                f"  [magenta]! {escape(who)}[/] {escape(f'[{b.code}]')}: {escape(b.reason)}"
            )
    if plan.conflicts:
        console.print("[bold]Conflicts (left alone):[/]")
        for c in plan.conflicts:
            console.print(f"  [red]✗ {escape(c.name)} ({c.vmid})[/]: {escape(c.reason)}")
    console.print(f"\n[bold]Plan:[/] {escape(summary_line(plan))}")
