"""``provisiond apply``: plan, show, confirm, execute once with live progress, report.

The cluster comes from the settings file/environment, or ``--sim DIR`` applies to a fresh
in-process simulator started from ``DIR/topology.yaml`` (spec: ``DIR/fleet.yaml`` unless
``--spec``), as ``plan --sim`` does. Without a terminal on stdin it refuses unless
``--auto-approve``. Progress shows as bars on a terminal and as one line per action otherwise.
After executing, the cluster is observed and planned again to report what is left.
SIGTERM/SIGINT stop taking new actions; actions waiting on Proxmox tasks stop waiting (the
tasks go on server-side and ``run``/``apply`` adopt them later).

Exit codes: 0 everything done; 1 error (settings, invalid spec, Proxmox unreachable, its
certificate untrusted or the token rejected, an action failed, refused or interrupted);
3 blocked items, conflicts, locked VMs or remaining work left.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace

from rich.console import Console
from rich.markup import escape

from provisiond import app
from provisiond.cli import sandbox
from provisiond.cli.arguments import (
    Commands,
    add_command,
    add_connection_flags,
    connection_settings,
    print_error,
    print_spec_error,
)
from provisiond.cli.console import console
from provisiond.cli.progress import Progress
from provisiond.cli.report import print_plan, summary_line
from provisiond.cli.summary import build_summary, print_summary
from provisiond.core.desired import DesiredState
from provisiond.core.errors import ProvisiondError, SpecError
from provisiond.logging import configure_logging
from provisiond.runtime.results import Outcome
from provisiond.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_LEFT = 0, 1, 3


def _confirm(console: Console) -> bool:
    console.print("\nApply this plan? Only 'yes' is accepted: ", end="")
    try:
        return input().strip() == "yes"
    except EOFError:
        return False


async def _apply(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    configure_logging(
        fmt=settings.log.format, level=args.log_level, secrets=settings.secret_values()
    )
    progress = Progress(console)
    built = app.build_daemon(settings, action_listener=progress)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        desired = built.reconciler.spec_source.load()
        if args.allow_large_growth:  # this run's confirmation, as allowLargeGrowth on every VM
            desired = DesiredState(
                tuple(
                    replace(f, vms=tuple(replace(v, allow_large_growth=True) for v in f.vms))
                    for f in desired.fleets
                )
            )
        observed = await built.observer.observe()
        plan = built.reconciler.planner(desired, observed)
        print_plan(plan, console, desired)
        if not plan.empty:
            lacking, unknown = await app.privilege_problems(built.parts, desired, observed)
            for text in unknown:
                console.print(f"[yellow]warning:[/] {escape(text)}")
            if lacking:
                for text in lacking:
                    console.print(f"[red]error:[/] {escape(text)}")
                console.print(
                    "[red]refusing to apply: the token lacks privileges the plan needs[/]"
                )
                return EXIT_ERROR
        if plan.empty:
            return EXIT_LEFT if plan.blocked or plan.conflicts or plan.waiting else EXIT_OK
        if not args.auto_approve:
            if not sys.stdin.isatty():
                console.print(
                    "[red]refusing to apply without a terminal to confirm on; "
                    "pass --auto-approve[/]"
                )
                return EXIT_ERROR
            if not _confirm(console):
                console.print("Apply cancelled.")
                return EXIT_ERROR
        with progress:
            report = await built.executor.execute(
                plan, desired=desired, observed=observed, stop=stop
            )
        if stop.is_set():
            console.print("[yellow]interrupted: in-flight Proxmox tasks continue server-side[/]")
            return EXIT_ERROR
        after = await built.observer.observe()
        left = built.reconciler.planner(desired, after)
        summary = build_summary(
            converged=left.empty and not left.waiting and not after.read_failures,
            seconds=report.seconds,
            desired=desired,
            observed=after,
            plan=left,
            actions=progress.done,
            failed=progress.failed,
            cycles=1,
        )
        print_summary(summary, console)
        console.print(f"[bold]Left:[/] {summary_line(left)}")
        if report.failed:
            return EXIT_ERROR
        requeued = report.counts()[Outcome.REQUEUED.value]
        if left.blocked or left.conflicts or left.waiting or not left.empty or requeued:
            return EXIT_LEFT
        return EXIT_OK
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await built.aclose()


def _run(args: argparse.Namespace) -> int:
    out = console()
    try:
        with connection_settings(args) as settings:
            return asyncio.run(_apply(args, settings, out))
    except SpecError as exc:
        return print_spec_error(exc, "invalid spec: nothing applied")
    except (ProvisiondError, sandbox.SandboxError) as exc:
        return print_error(exc)


def register(commands: Commands) -> None:
    p = add_command(
        commands,
        "apply",
        "plan, confirm and execute once (exit 0 done, 1 failed, 3 blocked/left)",
        __doc__,
    )
    add_connection_flags(p)
    p.add_argument(
        "--allow-large-growth",
        action="store_true",
        help="grow disks past the storage's free space or policy.maxDiskGrowth (irreversible)",
    )
    p.add_argument("--auto-approve", action="store_true", help="do not ask; required without a TTY")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="warning")
    p.set_defaults(handler=_run)
