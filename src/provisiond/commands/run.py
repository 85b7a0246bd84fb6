"""``provisiond run``: the reconcile daemon — observe, plan and act until stopped.

Cycles come every ``daemon.interval`` seconds, sooner when the spec files change, after progress
(to take the next step at once) or on SIGHUP, which re-reads the settings and the spec. A spec
that fails to load is reported with file:line and the last good one is kept. ``--read-only``
observes, plans and reports without acting. SIGTERM/SIGINT: no new actions; actions waiting on
Proxmox tasks stop waiting at once (the tasks go on server-side and are adopted on the next
start); exits within 30 s.

Exit codes: 0 stopped by a signal, 1 error (settings, or a component failed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from provisiond import daemon as assembly
from provisiond.core.errors import ConfigError
from provisiond.logging import configure_logging
from provisiond.settings import load_settings


def _run(args: argparse.Namespace) -> int:
    overrides = assembly.overrides_from(
        spec=args.spec, read_only=args.read_only, interval=args.interval
    )
    config = Path(args.config) if args.config else None
    try:
        settings = load_settings(config, overrides)
        configure_logging(
            fmt=settings.log.format, level=settings.log.level, secrets=settings.secret_values()
        )
        built = assembly.build_daemon(
            settings, time_scale=args.time_scale, follow_up=args.follow_up
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    mgr = assembly.manager(built, on_reload=assembly.reload_hook(built, config, overrides))
    try:
        asyncio.run(mgr.run())
    except ExceptionGroup as exc:
        print(f"error: {exc.exceptions[0]}", file=sys.stderr)
        return 1
    finally:
        built.close()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the reconcile daemon until stopped",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="settings file (default: $PROVISIOND_CONFIG)")
    p.add_argument(
        "--spec", action="append", metavar="PATH", help="fleet spec file or directory (repeatable)"
    )
    p.add_argument("--read-only", action="store_true", help="observe, plan, report; act on nothing")
    p.add_argument("--interval", type=float, help="seconds between cycles when nothing triggers")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="scale task polling and backoff for a sped-up simulator (default 1: real Proxmox)",
    )
    p.add_argument(
        "--follow-up",
        type=float,
        default=2.0,
        help="seconds before re-checking work under way (default 2)",
    )
    p.set_defaults(handler=_run)
