"""The ``provisiond`` command line. ``sys.exit`` happens here and nowhere else.

Exit codes shared by every command: 0 success, 1 error (including invalid input), 2 and 3 are
command-specific (documented in each command's ``--help``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from provisiond import __version__
from provisiond.cli.commands import apply, demo, plan, schema, sim, validate, version
from provisiond.cli.commands import run as run_command

# A command that does not work yet is not listed: a feature not built does not exist.
COMMANDS = (version, validate, schema, plan, apply, run_command, demo, sim)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provisiond",
        description=(
            "Keep a Proxmox VE cluster (its VMs, their GPU passthrough, their placement on "
            "hosts) and the Kubernetes nodes in its VMs the way a fleet spec declares them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"provisiond {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


def run() -> None:  # pragma: no cover - thin process entry point
    sys.exit(main())
