"""The ``provisiond`` command line. ``sys.exit`` happens here and nowhere else.

Exit codes shared by every command: 0 success, 1 error (including invalid input), 2 and 3 are
command-specific (documented in each command's ``--help``), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from provisiond import __version__
from provisiond.commands import apply, demo, plan, schema, sim, validate, version
from provisiond.commands import run as run_command

COMMANDS: tuple[ModuleType, ...] = (
    version,
    validate,
    schema,
    plan,
    apply,
    run_command,
    demo,
    sim,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provisiond",
        description=(
            "Keep a Proxmox VE cluster, its GPU passthrough and the Kubernetes nodes in its VMs "
            "the way a fleet spec declares them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"provisiond {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


def run() -> None:  # pragma: no cover - thin process entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
