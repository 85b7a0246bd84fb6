"""``provisiond sim serve``: run the Proxmox VE API simulator from a topology document.

Before serving it prints exactly three lines that tools parse::

    url: https://127.0.0.1:<port>
    ca: <path to the CA certificate to verify against>
    token: <user@realm!id=secret>

then serves until interrupted (SIGINT/SIGTERM). Exit codes: 0 stopped cleanly, 1 bad topology.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from provisiond.sim.pve.server import SimServer
from provisiond.sim.pve.testing import load_topology


def _serve(args: argparse.Namespace) -> int:
    try:
        topology = load_topology(Path(args.topology))
    except (OSError, ValidationError) as exc:
        print(f"error: {args.topology}: {exc}", file=sys.stderr)
        return 1
    if args.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SimServer(
        topology, port=args.port, time_scale=args.time_scale, log_requests=args.log_requests
    )
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"url: {server.url}")
    print(f"ca: {server.ca_path}")
    print(f"token: {server.token}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run the simulators provisiond is tested against")
    sims = p.add_subparsers(dest="sim_command", metavar="SIMULATOR", required=True)
    serve = sims.add_parser("serve", help="serve the Proxmox VE API simulator over HTTPS")
    serve.add_argument("--topology", required=True, help="a kind: Topology YAML file")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every simulated task duration by F (0.01 = a hundred times faster)",
    )
    serve.add_argument("--log-requests", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)
