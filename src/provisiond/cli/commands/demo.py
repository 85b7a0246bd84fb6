"""``provisiond demo``: the real daemon against an in-process simulated Proxmox VE cluster.

The simulator starts from ``config/examples/NAME/topology.yaml`` (default ``cps-gpu``) with
realistic task times sped up by ``--time-scale``; the daemon reconciles ``config/examples/NAME``
(its ``fleet.yaml``) through the real proxmoxer client until converged — no actions left — and
prints a summary: each VM with host, state and GPUs, GPUs claimed per host, blocked items and
conflicts, actions taken, seconds. Then it keeps reconciling until Ctrl-C, so the simulator can
be poked at (its URL and token are printed). docs/demo.md documents ``--output json``.

``--metrics-bind HOST:PORT`` serves ``/metrics``, ``/healthz`` and ``/readyz`` as ``run`` does
(off by default: a demo should not take the daemon's port); ``--mqtt-url mqtt://HOST:PORT``
publishes status and events to an anonymous broker and obeys its commands (docs/mqtt.md).

Exit codes: 0 converged with nothing blocked; 3 converged with blocked items or conflicts
(``--exit-when-converged``); 1 error, or not converged within ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from provisiond import app
from provisiond.adapters.httpserver import MetricsSettings, split_bind
from provisiond.adapters.mqtt_settings import MqttSettings
from provisiond.cli import sandbox
from provisiond.cli.arguments import Commands, add_command, add_output_flags, print_error
from provisiond.cli.console import console
from provisiond.cli.progress import Progress
from provisiond.cli.summary import build_summary, print_summary
from provisiond.core.errors import ConfigError
from provisiond.logging import configure_logging
from provisiond.runtime.reconciler import CycleResult
from provisiond.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_BLOCKED = 0, 1, 3


class _Watch:
    """Runnable + cycle listener: notices convergence, prints the summary, maybe stops."""

    name = "demo-watch"

    def __init__(self, *, exit_when_converged: bool, timeout: float, started: float) -> None:
        self.progress: Progress | None = None
        self.exit_when_converged = exit_when_converged
        self.timeout = timeout
        self.started = started
        self.converged = asyncio.Event()
        self.ready = asyncio.Event()  # the summary is built
        self.last: CycleResult | None = None
        self.summary: dict[str, Any] | None = None
        self.seconds = 0.0
        self.nodes: Callable[[], list[dict[str, Any]]] = list  # the Kubernetes simulator's

    def cycle_finished(self, result: CycleResult) -> None:
        self.last = result
        if result.converged and not self.converged.is_set():
            self.seconds = time.monotonic() - self.started
            self.converged.set()

    def build(self) -> dict[str, Any]:
        last = self.last
        assert self.progress is not None
        return build_summary(
            converged=self.converged.is_set(),
            seconds=self.seconds if self.converged.is_set() else time.monotonic() - self.started,
            desired=last.desired if last else None,
            observed=last.observed if last else None,
            plan=last.plan if last else None,
            actions=self.progress.done,
            failed=self.progress.failed,
            cycles=self.progress.cycles,
            nodes=self.nodes(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        waiter = asyncio.ensure_future(self.converged.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, timeout=self.timeout, return_when="FIRST_COMPLETED")
        waiter.cancel()
        stopper.cancel()
        if stop.is_set() and not self.converged.is_set():
            return
        self.summary = self.build()
        self.ready.set()
        if self.exit_when_converged or not self.converged.is_set():
            stop.set()


def _run(args: argparse.Namespace) -> int:
    examples = Path(args.examples_dir) if args.examples_dir else sandbox.examples_dir()
    example = examples / args.example
    try:
        with sandbox.simulated(
            example / "topology.yaml", time_scale=args.time_scale, kubernetes=[example]
        ) as sim:
            return _converge(args, example, sim)
    except sandbox.SandboxError as exc:
        return print_error(f"example {args.example!r}: {exc}")


def _converge(args: argparse.Namespace, example: Path, sim: sandbox.Endpoint) -> int:
    json_out = args.output == "json"
    out = console()
    ui = console(stderr=True) if json_out else out
    settings = _with_services(
        sandbox.settings_for(sim, [example], time_scale=args.time_scale, interval=args.interval),
        args,
    )
    configure_logging(fmt="console", level="warning")
    watch = _Watch(
        exit_when_converged=args.exit_when_converged,
        timeout=args.timeout,
        started=time.monotonic(),
    )
    watch.nodes = sim.nodes
    progress = Progress(ui, quiet=json_out, cycle_listeners=(watch,))
    watch.progress = progress
    try:
        built = app.build_daemon(
            settings,
            action_listener=progress,
            cycle_listener=progress,
            follow_up=max(0.05, 2.0 * args.time_scale),
            debounce=0.02,
        )
    except ConfigError as exc:
        return print_error(exc)
    ui.print(f"[bold]provisiond demo[/]: example [bold]{args.example}[/] on a simulated cluster")
    ui.print(f"  simulator {sim.url}  (time scale {args.time_scale})")
    ui.print(f"  token     {sim.token}\n  ca        {sim.ca}")
    if built.server is not None:
        ui.print(f"  metrics   http://{args.metrics_bind}/metrics  (/healthz, /readyz)")
    if built.mqtt is not None:
        ui.print(f"  mqtt      {args.mqtt_url}  topics {built.mqtt.prefix}/#")
    ui.print(f"  kubernetes {sim.kubeconfig or 'off'}\n")
    mgr = app.manager(built, extra=(watch,))
    printed = False

    async def main() -> None:
        nonlocal printed

        async def report() -> None:
            nonlocal printed
            await watch.ready.wait()
            if not watch.converged.is_set() or watch.summary is None:
                return  # timed out: shown after the daemon stopped
            _show(watch.summary, out, json_out=json_out)
            printed = True
            if not args.exit_when_converged:
                ui.print("\nStill reconciling against the simulator; Ctrl-C to stop.")

        reporter = asyncio.create_task(report())
        try:
            with progress:
                await mgr.run()
        finally:
            reporter.cancel()

    try:
        asyncio.run(main())
    except ExceptionGroup as exc:
        return print_error(exc.exceptions[0])
    finally:
        built.close()
    summary = watch.summary or watch.build()
    if not printed:
        _show(summary, out, json_out=json_out)
    if not summary["converged"]:
        return EXIT_ERROR
    return EXIT_BLOCKED if summary["blocked"] or summary["conflicts"] else EXIT_OK


def _with_services(settings: Settings, args: argparse.Namespace) -> Settings:
    """The endpoints the demo was asked for, and only those (not the environment's)."""
    metrics = MetricsSettings(enabled=args.metrics_bind is not None)
    if args.metrics_bind is not None:
        metrics = MetricsSettings(bind=args.metrics_bind)
    return settings.model_copy(update={"metrics": metrics, "mqtt": MqttSettings(url=args.mqtt_url)})


def _bind(value: str) -> str:
    try:
        split_bind(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _mqtt_url(value: str) -> str:
    try:
        MqttSettings(url=value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
        ) from None
    return value


def _add_service_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-bind",
        type=_bind,
        metavar="HOST:PORT",
        help="serve /metrics, /healthz and /readyz there (e.g. 127.0.0.1:19339; default: off)",
    )
    p.add_argument(
        "--mqtt-url",
        type=_mqtt_url,
        metavar="URL",
        help="publish status and events to this anonymous MQTT broker, take its commands",
    )


def _show(summary: dict[str, Any], console: Console, *, json_out: bool) -> None:
    if json_out:
        print(json.dumps(summary, indent=2), flush=True)
    else:
        print_summary(summary, console)


def register(commands: Commands) -> None:
    p = add_command(
        commands,
        "demo",
        "run the daemon against a simulated cluster from an example until converged",
        __doc__,
    )
    p.add_argument("--example", default="cps-gpu", help="example name (default cps-gpu)")
    p.add_argument("--examples-dir", help="where the examples live (default: the checkout's)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.05,
        help="simulated task time multiplier (default 0.05: twenty times faster); the daemon "
        "polls tasks and backs off as much faster",
    )
    add_output_flags(
        p,
        exit_flag="--exit-when-converged",
        exit_help="exit once converged: 0 nothing blocked, 3 blocked items or conflicts",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="give up (exit 1) if not converged by then"
    )
    p.add_argument(
        "--interval", type=float, default=30.0, help="seconds between cycles once converged"
    )
    _add_service_flags(p)
    p.set_defaults(handler=_run)
