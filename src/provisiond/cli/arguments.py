"""What the commands share on the command line: the parser type, the settings flags, errors.

A command module exposes ``register(commands)``, which adds its parser with ``add_command`` and
sets ``handler`` — a function ``(args: argparse.Namespace) -> int`` returning the exit code.
Settings flags map to settings overrides, the highest precedence (settings.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from provisiond.cli import sandbox
from provisiond.core.errors import SpecError
from provisiond.settings import Settings, load_settings

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
    """A command's parser; ``doc`` (the module docstring) is shown by ``--help`` as plain text."""
    return commands.add_parser(
        name,
        help=summary,
        description=plain(doc) if doc is not None else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def plain(doc: str) -> str:
    """A docstring as help text: reStructuredText literals (````x````) and ``::`` as plain words."""
    return doc.replace("``", "").replace("::\n", ":\n")


def add_settings_flags(parser: argparse.ArgumentParser, *, spec_default: str = "") -> None:
    """``--config FILE`` and ``--spec PATH`` (repeatable), read by ``settings_overrides``."""
    parser.add_argument("--config", type=Path, help="settings file (default: $PROVISIOND_CONFIG)")
    parser.add_argument(
        "--spec",
        action="append",
        metavar="PATH",
        help=f"fleet spec file or directory (repeatable{spec_default})",
    )


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--spec`` and ``--sim DIR``: where the cluster and the spec are."""
    add_settings_flags(parser, spec_default="; default: settings spec.paths, or DIR/fleet.yaml")
    parser.add_argument(
        "--sim",
        metavar="DIR",
        help="a simulator started from DIR/topology.yaml, not a cluster (spec: DIR/fleet.yaml)",
    )


SIM_TIME_SCALE = 0.01  # a simulated task takes 1/100 of a real one


@contextlib.contextmanager
def connection_settings(args: argparse.Namespace) -> Iterator[Settings]:
    """Settings for a real cluster (settings file/environment), or for a simulator started from
    ``--sim DIR`` (stopped when the block ends)."""
    if args.sim is None:
        yield load_settings(args.config, settings_overrides(spec=args.spec))
        return
    sim_dir = Path(args.sim)
    with sandbox.simulated(sim_dir / "topology.yaml", time_scale=SIM_TIME_SCALE) as sim:
        spec = [Path(p) for p in args.spec] if args.spec else [sim_dir / "fleet.yaml"]
        yield sandbox.settings_for(sim, spec, time_scale=SIM_TIME_SCALE)


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
