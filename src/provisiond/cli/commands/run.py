"""``provisiond run``: the reconcile daemon — observe, plan and act until stopped.

Cycles come every ``daemon.interval`` seconds, sooner when the spec files change, after progress
(to take the next step at once) or on SIGHUP, which re-reads the settings and the spec. A spec
that fails to load is reported with file:line and the last good one is kept. ``--read-only``
observes, plans and reports without acting. SIGTERM/SIGINT: no new actions; actions waiting on
Proxmox tasks stop waiting at once (the tasks go on server-side and are adopted on the next
start); exits within 30 s, within 2 s while only observing or loading the spec (a read or a
parse under way is abandoned).
Under systemd (``Type=notify``) it speaks sd_notify: READY after the first observation, STATUS
per cycle, WATCHDOG pings, STOPPING, RELOADING on SIGHUP.

Settings are checked before anything starts (the URL's form, the CA bundle readable and a
certificate, the secret file present): a problem is one line on stderr and exit 1. Problems that
come later — Proxmox down, the CA file replaced, the token revoked — are logged once per cause
(``proxmox_access_failed``) and retried on a backoff (minutes for authentication); the daemon
keeps running, not ready, with its last good spec.

With Kubernetes configured, replicas elect a leader on a Lease (``leader_election.*``): only the
leader acts, standbys observe; SIGTERM releases the lease after calls in flight are answered.
Without it, a lock in ``daemon.state_dir`` refuses a second daemon on the same machine.

Exit codes: 0 stopped by a signal, 1 error (settings, another daemon running here, or a
component failed).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from provisiond import app
from provisiond.cli.arguments import (
    Commands,
    add_command,
    add_settings_flags,
    print_error,
    settings_overrides,
)
from provisiond.core.errors import ProvisiondError
from provisiond.logging import configure_logging
from provisiond.settings import load_settings


def _run(args: argparse.Namespace) -> int:
    overrides = settings_overrides(spec=args.spec, read_only=args.read_only, interval=args.interval)
    try:
        settings = load_settings(args.config, overrides)
        configure_logging(
            fmt=settings.log.format, level=settings.log.level, secrets=settings.secret_values()
        )
        lock = app.instance_lock(settings)
        if lock is not None:
            lock.acquire()
        notifier = app.systemd_notifier(os.environ)
        built = app.build_daemon(settings, follow_up=args.follow_up, cycle_listener=notifier)
    except ProvisiondError as exc:
        return print_error(exc)
    reload = app.reload_hook(built, args.config, overrides)
    mgr = app.manager(built, on_reload=reload, notifier=notifier)
    try:
        asyncio.run(mgr.run())
    except ExceptionGroup as exc:
        return print_error(exc.exceptions[0])
    finally:
        built.close()
        if lock is not None:
            lock.release()
    return 0


def register(commands: Commands) -> None:
    p = add_command(commands, "run", "run the reconcile daemon until stopped", __doc__)
    add_settings_flags(p)
    p.add_argument("--read-only", action="store_true", help="observe, plan, report; act on nothing")
    p.add_argument("--interval", type=float, help="seconds between cycles when nothing triggers")
    p.add_argument(
        "--follow-up",
        type=float,
        default=2.0,
        help="seconds before re-checking work under way (default 2)",
    )
    p.set_defaults(handler=_run)
