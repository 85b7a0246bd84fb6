"""``provisiond validate PATH...``: check fleet and topology documents without touching anything.

Prints every problem as ``file:line: field.path: message`` (all of them, not the first) and
exits 0 when every document is valid, 1 otherwise. Directories contribute their ``*.yaml`` and
``*.yml`` files and must hold at least one ``kind: Fleet`` document.
"""

from __future__ import annotations

import argparse

from provisiond.adapters.specfile import load_documents
from provisiond.cli.arguments import Commands, add_command
from provisiond.core.members import expand


def _run(args: argparse.Namespace) -> int:
    loaded = load_documents(args.paths)
    for issue in loaded.issues:
        print(issue)
    if loaded.issues:
        n = len(loaded.issues)
        print(f"invalid: {n} problem{'s' if n != 1 else ''}")
        return 1
    vms = sum(len(expand(f.fleet)) for f in loaded.fleets)
    for doc in loaded.fleets:
        print(f"{doc.file}: Fleet {doc.fleet.metadata.name} ok")
    for top in loaded.topologies:
        print(f"{top.file}: Topology {top.topology.metadata.name} ok")
    print(f"valid: {len(loaded.fleets)} fleets ({vms} VMs), {len(loaded.topologies)} topologies")
    return 0


def register(commands: Commands) -> None:
    p = add_command(
        commands,
        "validate",
        "check fleet and topology documents (exit 0 valid, 1 invalid)",
        __doc__,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a YAML file or a directory of them")
    p.set_defaults(handler=_run)
