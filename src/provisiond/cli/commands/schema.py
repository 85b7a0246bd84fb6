"""``provisiond schema``: the JSON Schema of a fleet document (committed as docs/fleet.schema.json).

Editors use it for completion and checks (``# yaml-language-server: $schema=…``); it describes
the shape and formats only — ``provisiond validate`` also checks what spans several fields.
"""

from __future__ import annotations

import argparse
import json

from provisiond.cli.arguments import Commands, add_command
from provisiond.core.spec import json_schema


def render() -> str:
    """The schema as the committed file holds it (2-space JSON, trailing newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _run(_args: argparse.Namespace) -> int:
    print(render(), end="")
    return 0


def register(commands: Commands) -> None:
    p = add_command(commands, "schema", "print the JSON Schema of the fleet spec", __doc__)
    p.set_defaults(handler=_run)
