"""What the commands share on the command line: the parser type, the settings flags, errors.

A command module exposes ``register(commands)``, which adds its parser with ``add_command`` and
sets ``handler`` — a function ``(args: argparse.Namespace) -> int`` returning the exit code.
Settings flags map to settings overrides, the highest precedence (settings.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Protocol

from provisiond.core.errors import SpecError

EXIT_OK, EXIT_ERROR = 0, 1


class Commands(Protocol):
    """The object ``ArgumentParser.add_subparsers()`` returns, as far as commands use it."""

    def add_parser(
        self,
        name: str,
        *,
        help: str | None = ...,  # noqa: A002 - argparse's own keyword
        description: str | None = ...,
        formatter_class: type[argparse.HelpFormatter] = ...,
    ) -> argparse.ArgumentParser: ...


def add_command(
    commands: Commands, name: str, summary: str, doc: str | None = None
) -> argparse.ArgumentParser:
    """A command's parser; ``doc`` (the module docstring) is shown verbatim by ``--help``."""
    return commands.add_parser(
        name,
        help=summary,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_settings_flags(parser: argparse.ArgumentParser, *, spec_default: str = "") -> None:
    """``--config FILE`` and ``--spec PATH`` (repeatable), read by ``settings_overrides``."""
    parser.add_argument("--config", type=Path, help="settings file (default: $PROVISIOND_CONFIG)")
    parser.add_argument(
        "--spec",
        action="append",
        metavar="PATH",
        help=f"fleet spec file or directory (repeatable{spec_default})",
    )


def add_output_flags(parser: argparse.ArgumentParser, *, exit_flag: str, exit_help: str) -> None:
    """``--output text|json`` and the command's flag that makes the exit code say more."""
    parser.add_argument("--output", choices=["text", "json"], default="text")
    parser.add_argument(exit_flag, action="store_true", help=exit_help)


def settings_overrides(
    *, spec: list[str] | None = None, read_only: bool = False, interval: float | None = None
) -> dict[str, Any]:
    """CLI values as settings overrides (highest precedence); only what was given."""
    out: dict[str, Any] = {}
    if spec:
        out["spec"] = {"paths": [Path(p) for p in spec]}
    daemon: dict[str, Any] = {}
    if read_only:
        daemon["read_only"] = True
    if interval is not None:
        daemon["interval"] = interval
    if daemon:
        out["daemon"] = daemon
    return out


def print_spec_error(exc: SpecError, verdict: str) -> int:
    """Every problem as ``file:line: field: message``, then the verdict; the exit code."""
    for issue in exc.issues:
        print(issue, file=sys.stderr)
    print(verdict, file=sys.stderr)
    return EXIT_ERROR


def print_error(problem: object) -> int:
    """``error: …`` on stderr; the exit code."""
    print(f"error: {problem}", file=sys.stderr)
    return EXIT_ERROR
