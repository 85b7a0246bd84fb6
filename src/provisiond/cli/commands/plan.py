"""``provisiond plan``: observe the cluster, diff it against the fleet spec, show what would change.

Never writes anything. Output is terraform-like text (actions grouped per VM with ``+ ~ - →``
markers and the reason of each, then blocked items and conflicts, then a summary line), or the
JSON documented in docs/plan-format.md (``--output json``).

``--sim DIR`` plans against a fresh in-process simulator started from ``DIR/topology.yaml``,
with ``DIR/fleet.yaml`` as the spec unless ``--spec`` is given: how to try a spec without a
cluster. Otherwise the Proxmox connection comes from the settings file/environment.

Exit codes: 0 success (with ``--detailed-exitcode``: the cluster matches the spec), 1 error,
2 actions planned, 3 nothing to do but blocked items or conflicts (both ``--detailed-exitcode``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from pydantic import ValidationError

from provisiond.adapters.specfile import load_desired
from provisiond.app import build_proxmox, observe_all, privilege_problems, proxmox_connection
from provisiond.cli import arguments, sandbox
from provisiond.cli.console import console
from provisiond.cli.report import plan_to_json, print_plan
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ProvisiondError, SpecError
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan as make_plan
from provisiond.logging import configure_logging
from provisiond.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BLOCKED = 0, 1, 2, 3


async def _observe(settings: Settings, desired: DesiredState) -> tuple[ObservedState, list[str]]:
    """The snapshot, and the privileges the fleet needs but the token lacks (as warnings)."""
    parts = build_proxmox(proxmox_connection(settings), settings)
    try:
        observed = await observe_all(settings, parts)
        lacking, unknown = await privilege_problems(parts, desired, observed)
        return observed, lacking + unknown
    finally:
        parts.close()


def _exit_code(plan: Plan, *, detailed: bool) -> int:
    if not detailed:
        return EXIT_OK
    if plan.actions:
        return EXIT_CHANGES
    return EXIT_BLOCKED if plan.blocked or plan.conflicts else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    configure_logging(fmt="console", level="warning")
    try:
        with arguments.connection_settings(args) as settings:
            desired: DesiredState = load_desired(settings.spec.paths)
            observed, lacking = asyncio.run(_observe(settings, desired))
            result = make_plan(desired, observed, now=time.time())
    except SpecError as exc:
        verdict = f"error: the fleet spec is invalid ({len(exc.issues)} problems)"
        return arguments.print_spec_error(exc, verdict)
    except (ProvisiondError, sandbox.SandboxError, OSError, ValidationError) as exc:
        return arguments.print_error(exc)
    unseen = observed.unobserved
    warnings = list(lacking)
    warnings += [
        f"could not read {what}: nothing is cloned or destroyed for it" for what in unseen.lists
    ]
    warnings += [
        f"host {h} is offline: its VMs are unknown, not missing" for h in unseen.offline_hosts
    ]
    warnings += [
        f"could not read {what}: treated as absent (nothing placed on it)"
        for what in unseen.partial
    ]
    if unseen.vm_configs:
        warnings.append(f"could not read the config of VMs {list(unseen.vm_configs)}")
    if unseen.kubernetes:
        warnings.append(
            "could not read the Kubernetes nodes: their labels, taints and uncordons wait, "
            "and no Kubernetes VM is disrupted (not observed: kubernetes nodes)"
        )
    if args.output == "json":
        print(json.dumps(plan_to_json(result, desired, warnings=warnings), indent=2))
    else:
        print_plan(result, console(), desired, warnings)
    return _exit_code(result, detailed=args.detailed_exitcode)


def register(commands: arguments.Commands) -> None:
    p = arguments.add_command(
        commands, "plan", "show what provisiond would change (never writes)", __doc__
    )
    arguments.add_connection_flags(p)
    arguments.add_output_flags(
        p,
        exit_flag="--detailed-exitcode",
        exit_help="exit 0 in line, 2 actions planned, 3 only blocked items or conflicts",
    )
    p.set_defaults(handler=_run)
