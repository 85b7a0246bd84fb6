"""``provisiond version``: the package version and the versions of the clients it drives."""

from __future__ import annotations

import argparse
import json
import platform
from importlib.metadata import PackageNotFoundError, version

from provisiond import __version__
from provisiond.cli.arguments import Commands, add_command

# The libraries provisiond drives.
_COMPONENTS = ("proxmoxer", "kubernetes", "pydantic", "prometheus-client", "aiomqtt")


def _versions() -> dict[str, str]:
    out = {"provisiond": __version__, "python": platform.python_version()}
    for name in _COMPONENTS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - all are hard dependencies
            out[name] = "missing"
    return out


def _run(args: argparse.Namespace) -> int:
    v = _versions()
    if args.output == "json":
        print(json.dumps(v, indent=2))
    else:
        print(f"provisiond {v.pop('provisiond')}")
        for k, val in v.items():
            print(f"  {k} {val}")
    return 0


def register(commands: Commands) -> None:
    p = add_command(commands, "version", "print the version of provisiond and its clients")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.set_defaults(handler=_run)
