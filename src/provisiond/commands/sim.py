"""``provisiond sim serve``: run the Proxmox VE API simulator from a topology document.

Before serving it prints exactly three lines that tools parse::

    url: https://127.0.0.1:<port>
    ca: <path to the CA certificate to verify against>
    token: <user@realm!id=secret>

then serves until interrupted (SIGINT/SIGTERM). Exit codes: 0 stopped cleanly, 1 bad topology
or faults file. ``--faults FILE`` injects the faults a YAML file describes (sim/pve/faults.py).

``provisiond sim snapshot --url URL --token TOKEN [--ca CA] [-o FILE]`` reads a running simulator
(or a real PVE) through its API and writes the cluster as a Topology YAML (sim/pve/snapshot.py).
Exit codes: 0 written, 1 the API could not be read.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from provisiond.sim.pve.faults import FaultPlan
from provisiond.sim.pve.server import SimServer
from provisiond.sim.pve.snapshot import FetchError, snapshot, to_yaml
from provisiond.sim.pve.testing import load_topology


def _serve(args: argparse.Namespace) -> int:
    try:
        topology = load_topology(Path(args.topology))
    except (OSError, ValidationError) as exc:
        print(f"error: {args.topology}: {exc}", file=sys.stderr)
        return 1
    faults = None
    if args.faults:
        try:
            data = YAML(typ="safe").load(Path(args.faults).read_text(encoding="utf-8"))
            faults = FaultPlan.model_validate(data or {})
        except (OSError, YAMLError, ValidationError) as exc:
            print(f"error: {args.faults}: {exc}", file=sys.stderr)
            return 1
    if args.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SimServer(
        topology,
        port=args.port,
        time_scale=args.time_scale,
        log_requests=args.log_requests,
        faults=faults,
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
    serve.add_argument(
        "--faults", metavar="FILE", help="inject the faults this YAML file describes"
    )
    serve.set_defaults(handler=_serve)
    snap = sims.add_parser(
        "snapshot", help="write a running Proxmox VE cluster (or simulator) as a Topology YAML"
    )
    snap.add_argument("--url", required=True, help="https://host[:port] of the API")
    snap.add_argument("--token", required=True, help="API token: user@realm!id=secret")
    snap.add_argument("--ca", help="CA certificate to verify against (default: system CAs)")
    snap.add_argument("-o", "--output", help="write here instead of standard output")
    snap.set_defaults(handler=_snapshot)


def _snapshot(args: argparse.Namespace) -> int:
    from proxmoxer import ProxmoxAPI, ResourceException  # noqa: PLC0415 - only this command
    from requests import RequestException  # noqa: PLC0415

    url = urlsplit(args.url if "://" in args.url else f"https://{args.url}")
    tokenid, _, secret = args.token.rpartition("=")
    user, _, name = tokenid.partition("!")
    api = ProxmoxAPI(
        url.hostname,
        port=url.port or 8006,
        user=user,
        token_name=name,
        token_value=secret,
        verify_ssl=args.ca or True,
        timeout=30,
    )

    def fetch(path: str, **params: object) -> Any:
        try:
            return api(path.lstrip("/")).get(**params)
        except ResourceException as exc:
            raise FetchError(str(exc)) from exc

    try:
        text = to_yaml(snapshot(fetch))
    except (FetchError, RequestException, ValidationError) as exc:
        print(f"error: {args.url}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
