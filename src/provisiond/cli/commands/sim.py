"""``provisiond sim serve``: run the Proxmox VE API simulator from a topology document.

Before serving it prints three lines that tools parse::

    url: https://127.0.0.1:<port>
    ca: <path to the CA certificate to verify against>
    token: <user@realm!id=secret>

With ``--kubernetes`` the linked Kubernetes API simulator runs too (its Nodes are the running
VMs, named as the ``fleet.yaml`` beside the topology says) and a fourth line follows::

    kubeconfig: <path to a kubeconfig for it (CA embedded, bearer token)>

then the same as settings, to copy: a ``proxmox:`` block for the settings file and the
``PROVISIOND_PROXMOX__*`` environment lines (shell-quoted)::

    proxmox:
      url: https://127.0.0.1:<port>
      ca_bundle: <path>
      token_id: <user@realm!id>
      token_secret: <secret>
    export PROVISIOND_PROXMOX__URL=https://127.0.0.1:<port>
    …

and serves until interrupted (SIGINT/SIGTERM; the Kubernetes simulator stops first). Exit
codes: 0 stopped cleanly, 1 bad topology or faults file. ``--faults FILE`` injects the faults
a YAML file describes (sim/pve/faults.py).

``provisiond sim snapshot --url URL --token TOKEN [--ca CA] [-o FILE]`` reads a running simulator
(or a real PVE) through its API and writes the cluster as a Topology YAML (sim/pve/snapshot.py).
Exit codes: 0 written, 1 the API could not be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

from provisiond.cli import sandbox
from provisiond.cli.arguments import Commands, add_command, print_error


def _as_settings(sim: sandbox.Endpoint) -> str:
    """The endpoint as the settings take it: a settings-file block and environment lines."""
    token_id, _, secret = sim.token.rpartition("=")
    values = {
        "url": sim.url,
        "ca_bundle": str(sim.ca),
        "token_id": token_id,
        "token_secret": secret,
    }
    block = ["proxmox:", *(f"  {key}: {json.dumps(value)}" for key, value in values.items())]
    env = [f"export PROVISIOND_PROXMOX__{k.upper()}={shlex.quote(v)}" for k, v in values.items()]
    return "\n".join(["# as settings (settings file, or environment):", *block, *env])


def _kube_spec(topology: Path) -> list[Path]:
    """The fleet spec beside the topology (an example's ``fleet.yaml``), which names the VMs'
    nodes and control plane; none: every VM joins under its own name."""
    fleet = topology.parent / "fleet.yaml"
    return [fleet] if fleet.is_file() else []


def _serve(args: argparse.Namespace) -> int:
    if args.log_requests:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    faults = Path(args.faults) if args.faults else None
    try:
        with sandbox.simulated(
            Path(args.topology),
            port=args.port,
            time_scale=args.time_scale,
            log_requests=args.log_requests,
            faults=faults,
            kubernetes=_kube_spec(Path(args.topology)) if args.kubernetes else None,
        ) as sim:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            print(f"url: {sim.url}")
            print(f"ca: {sim.ca}")
            print(f"token: {sim.token}", flush=True)
            if sim.kubeconfig is not None:
                print(f"kubeconfig: {sim.kubeconfig}", flush=True)
            print(_as_settings(sim), flush=True)
            stop.wait()
    except sandbox.SandboxError as exc:
        return print_error(exc)
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    try:
        text = sandbox.snapshot_yaml(args.url, args.token, args.ca)
    except sandbox.SandboxError as exc:
        return print_error(exc)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def register(commands: Commands) -> None:
    p = add_command(commands, "sim", "run the simulators provisiond is tested against", __doc__)
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
    serve.add_argument(
        "--kubernetes",
        action="store_true",
        help="also serve the Kubernetes API simulator, its Nodes the running VMs (prints "
        "kubeconfig: PATH after the url/ca/token lines)",
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
