"""The sandbox seam: the one module of the product that reaches the simulator (``provisiond.sim``).

The sandbox entry points — ``demo``, ``plan --sim``, ``sim serve`` and ``sim snapshot`` — start
an in-process simulated Proxmox VE cluster here and get back only what a client needs (URL, CA,
token) and settings that point the real daemon at it. Nothing else in ``provisiond`` imports
``provisiond.sim`` (an import-linter contract says so).

With ``kubernetes`` (always for ``demo``; ``sim serve --kubernetes``) the Kubernetes API
simulator runs too, linked to the Proxmox one (its running VMs join as Nodes, named and marked
control plane as the fleet spec says: ``Membership.from_desired``), its joining delays scaled
by the time scale; the daemon reaches it through a kubeconfig written to a private temporary
directory, which goes away with the simulators (the Kubernetes one stops first).

The simulator is imported when a sandbox command runs, not when the CLI loads: ``provisiond
run``/``apply``/``plan`` against a real cluster never load it. The simulator's token is full
administrator and its CA is generated per start, so TLS stays verified end to end.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from provisiond.settings import Settings


class SandboxError(Exception):
    """A topology, faults file or snapshot source that cannot be used; the text names it."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A running simulator, as a client sees it."""

    url: str
    ca: Path
    token: str  # user@realm!id=secret: the administrator's API token
    kubeconfig: Path | None = None  # the Kubernetes simulator's, when it runs
    # every Node (name, vm, ready, unschedulable, labels, taints) for the demo's summary
    nodes: Callable[[], list[dict[str, Any]]] = field(default=list)


def examples_dir() -> Path:
    """``config/examples`` of the source checkout."""
    from provisiond.sim.pve.testing import EXAMPLES  # noqa: PLC0415 - loaded only in the sandbox

    return EXAMPLES


@contextmanager
def simulated(
    topology: Path,
    *,
    time_scale: float,
    port: int = 0,
    log_requests: bool = False,
    faults: Path | None = None,
    kubernetes: Sequence[Path] | None = None,
) -> Iterator[Endpoint]:
    """The simulator started from a ``kind: Topology`` file (and a faults file), until exit;
    with ``kubernetes`` (the fleet spec's paths, possibly none) the linked Kubernetes one too."""
    from ruamel.yaml import YAML  # noqa: PLC0415 - loaded only in the sandbox
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    from provisiond.sim.pve.faults import FaultPlan  # noqa: PLC0415
    from provisiond.sim.pve.server import SimServer  # noqa: PLC0415
    from provisiond.sim.pve.testing import load_topology  # noqa: PLC0415

    try:
        model = load_topology(topology)
    except (OSError, YAMLError, ValidationError) as exc:
        raise SandboxError(f"{topology}: {exc}") from None
    plan = None
    if faults is not None:
        try:
            data = YAML(typ="safe").load(faults.read_text(encoding="utf-8"))
            plan = FaultPlan.model_validate(data or {})
        except (OSError, YAMLError, ValidationError) as exc:
            raise SandboxError(f"{faults}: {exc}") from None
    server = SimServer(
        model, port=port, time_scale=time_scale, log_requests=log_requests, faults=plan
    )
    server.start()
    with ExitStack() as stack:
        stack.callback(server.stop)
        endpoint = Endpoint(url=server.url, ca=server.ca_path, token=server.token)
        if kubernetes is not None:
            kube = _kube_linked(server, kubernetes, time_scale)
            stack.callback(kube.stop)  # runs before server.stop: LIFO
            private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pd-kube-")))
            endpoint = Endpoint(
                url=endpoint.url,
                ca=endpoint.ca,
                token=endpoint.token,
                kubeconfig=kube.write_kubeconfig(private / "kubeconfig"),
                nodes=kube.nodes_summary,
            )
        yield endpoint


def kube_delays(time_scale: float) -> tuple[float, float]:
    """How long a started VM takes to register its Node and to turn Ready: about 20 s and 10 s
    on a real machine, scaled like the Proxmox simulator's tasks (with a floor)."""
    scale = min(time_scale, 1.0)
    return max(0.05, 20.0 * scale), max(0.05, 10.0 * scale)


def _kube_linked(server: Any, spec: Sequence[Path], time_scale: float) -> Any:
    from provisiond.adapters.specsource import SpecFiles  # noqa: PLC0415 - sandbox only
    from provisiond.core.errors import SpecError  # noqa: PLC0415
    from provisiond.sim.kube import Membership, start_linked  # noqa: PLC0415

    membership = Membership()
    # an invalid spec: the daemon reports its problems; VMs join by their names meanwhile
    with contextlib.suppress(SpecError):
        if spec:
            membership = Membership.from_desired(SpecFiles(list(spec)).load())
    node_delay, ready_delay = kube_delays(time_scale)
    return start_linked(
        server, membership=membership, node_delay=node_delay, ready_delay=ready_delay
    )


def executor_settings(time_scale: float) -> dict[str, float]:
    """``executor.*`` settings for a simulator whose tasks run ``time_scale`` times as long as
    real ones: task polling, retries and backoff shrink with it (never below a floor that keeps
    a loaded machine from spinning). At 1 or more, the defaults: real Proxmox."""
    if time_scale >= 1.0:
        return {}
    return {
        "task_poll_interval": max(0.005, 0.5 * time_scale),
        "task_poll_max": max(0.01, 1.0 * time_scale),
        "retry_initial": max(0.01, 0.5 * time_scale),
        "retry_max": max(0.1, 10.0 * time_scale),
        "backoff_base": max(0.2, 5.0 * time_scale),
        "backoff_max": max(2.0, 300.0 * time_scale),
        "requeue_after": max(0.2, 10.0 * time_scale),
    }


def settings_for(
    sim: Endpoint,
    spec_paths: list[Path],
    *,
    time_scale: float = 1.0,
    interval: float = 60.0,
    log_level: str = "warning",
) -> Settings:
    """Settings that point the daemon at ``sim`` (and its Kubernetes simulator when it runs;
    else Kubernetes is off), polling as fast as its ``time_scale``."""
    tokenid, _, secret = sim.token.rpartition("=")
    kubernetes: dict[str, Any] = {"enabled": False}
    if sim.kubeconfig is not None:
        kubernetes = {
            "kubeconfig": sim.kubeconfig,
            "reconnect_initial": max(0.05, 0.5 * min(time_scale, 1.0)),
            "reconnect_max": max(0.5, 30.0 * min(time_scale, 1.0)),
        }
    return Settings(
        proxmox={"url": sim.url, "token_id": tokenid, "token_secret": secret, "ca_bundle": sim.ca},
        spec={"paths": spec_paths},
        daemon={"interval": interval},
        executor=executor_settings(time_scale),
        log={"format": "console", "level": log_level},
        kubernetes=kubernetes,
    )


def snapshot_yaml(url: str, token: str, ca: str | None) -> str:
    """A running Proxmox VE cluster (or simulator), read through its API, as a Topology YAML."""
    from proxmoxer import ProxmoxAPI, ResourceException  # noqa: PLC0415 - only this command
    from requests import RequestException  # noqa: PLC0415

    from provisiond.sim.pve.snapshot import FetchError, snapshot, to_yaml  # noqa: PLC0415

    parts = urlsplit(url if "://" in url else f"https://{url}")
    tokenid, _, secret = token.rpartition("=")
    user, _, name = tokenid.partition("!")
    api = ProxmoxAPI(
        parts.hostname,
        port=parts.port or 8006,
        user=user,
        token_name=name,
        token_value=secret,
        verify_ssl=ca or True,
        timeout=30,
    )

    def fetch(path: str, **params: object) -> Any:
        try:
            return api(path.lstrip("/")).get(**params)
        except ResourceException as exc:
            raise FetchError(str(exc)) from exc

    try:
        return to_yaml(snapshot(fetch))
    except (FetchError, RequestException, ValidationError) as exc:
        raise SandboxError(f"{url}: {exc}") from None
