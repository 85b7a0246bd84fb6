"""Helpers for tests and the daemon's end-to-end tests: start a simulator, get a client.

``running_simulator`` starts a ``SimServer`` on a free port and yields a ``SimHandle``;
``proxmox_client`` builds a real ``proxmoxer.ProxmoxAPI`` for it with TLS verified against the
simulator's CA. Example topologies are found by name in ``config/examples/<name>/`` of the
source checkout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from provisiond.core.topology import Topology
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.server import SimServer

EXAMPLES = Path(__file__).resolve().parents[4] / "config" / "examples"


def load_topology(source: Topology | Path | str) -> Topology:
    """A Topology from a model, a YAML file, or an example's name (``cps-gpu``)."""
    if isinstance(source, Topology):
        return source
    path = Path(source)
    if not path.suffix and not path.exists():
        path = EXAMPLES / str(source) / "topology.yaml"
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return Topology.model_validate(data)


@contextmanager
def running_simulator(
    topology: Topology | Path | str = "cps-gpu",
    *,
    time_scale: float = 0.01,
    log_requests: bool = False,
) -> Iterator[SimHandle]:
    server = SimServer(load_topology(topology), time_scale=time_scale, log_requests=log_requests)
    server.start()
    try:
        yield SimHandle(server)
    finally:
        server.stop()


def proxmox_client(
    handle: SimHandle,
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 10.0,
) -> Any:
    """A real proxmoxer client for the simulator, TLS verified.

    By default with the administrator's API token; ``token="user@realm!id=secret"`` (what
    ``SimHandle.add_token`` returns) for another token; ``user`` + ``password`` for ticket auth
    (proxmoxer logs in with ``POST /access/ticket`` and renews the ticket itself).
    """
    from proxmoxer import ProxmoxAPI  # noqa: PLC0415 - only tests need the client library

    if user is not None:
        if password is None:
            raise ValueError("ticket auth needs user and password")
        return ProxmoxAPI(
            handle.host,
            port=handle.port,
            user=user,
            password=password,
            verify_ssl=handle.ca_path,
            timeout=timeout,
        )
    tokenid, _, secret = (token or handle.token).rpartition("=")
    owner, _, name = tokenid.partition("!")
    return ProxmoxAPI(
        handle.host,
        port=handle.port,
        user=owner,
        token_name=name,
        token_value=secret,
        verify_ssl=handle.ca_path,
        timeout=timeout,
    )
