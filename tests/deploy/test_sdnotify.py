"""The sd_notify protocol as systemd sees it: ``provisiond run`` as a process against the
Proxmox simulator, a Unix datagram socket standing in for ``$NOTIFY_SOCKET``.

READY only after the first observation (that observation is held back by the simulator, while
the watchdog already pings), STATUS lines per cycle, WATCHDOG at half of ``$WATCHDOG_USEC``,
RELOADING with CLOCK_MONOTONIC on SIGHUP then READY, STOPPING on SIGTERM and nothing after.
"""

from __future__ import annotations

import itertools
import json
import signal
import statistics
import time
from pathlib import Path

import pytest
from deploy_support import notify_listener, start_daemon

from provisiond.adapters.sdnotify import NotifySocket, SystemdNotifier, watchdog_interval
from provisiond.cli.sandbox import executor_settings
from provisiond.sim.pve.testing import EXAMPLES, running_simulator

pytestmark = pytest.mark.e2e

FIRST_READ_DELAY = 2.0  # seconds the simulator holds the first cluster-wide list


def _settings(tmp: Path, url: str, token: str, ca: str) -> Path:
    """Settings as the systemd unit gives them: the secret as a credential, not in the file."""
    tokenid, _, secret = token.rpartition("=")
    (tmp / "credentials").mkdir()
    (tmp / "credentials" / "proxmox-token-secret").write_text(secret)
    (tmp / "state").mkdir()
    cfg = tmp / "provisiond.yaml"
    settings = {
        "proxmox": {"url": url, "token_id": tokenid, "ca_bundle": ca},
        "spec": {"paths": [str(EXAMPLES / "cps-gpu" / "fleet.yaml")]},
        "executor": executor_settings(0.01),
        "log": {"format": "json"},
        "metrics": {"bind": "127.0.0.1:0"},  # a free port: never the shared default
    }
    cfg.write_text(json.dumps(settings))
    return cfg


def test_notify_protocol_of_a_running_daemon(tmp_path: Path) -> None:
    with running_simulator("cps-gpu", time_scale=0.01) as sim, notify_listener() as systemd:
        sim.inject("/cluster/resources", method="GET", latency=FIRST_READ_DELAY, times=1)
        cfg = _settings(tmp_path, sim.url, sim.token, sim.ca_path)
        started = time.monotonic()
        proc = start_daemon(
            ["run", "--config", str(cfg), "--follow-up", "0.05"],
            tmp_path / "daemon.log",
            {
                "NOTIFY_SOCKET": systemd.path,
                "WATCHDOG_USEC": "1000000",
                "CREDENTIALS_DIRECTORY": str(tmp_path / "credentials"),
                "STATE_DIRECTORY": str(tmp_path / "state"),
            },
        )
        try:
            ready = systemd.wait_for("READY", "1", timeout=60)
            before = [d for d in systemd.received if d.at < ready.at]
            # Alive and talking while the first observation is held, but not ready.
            assert ready.at - started >= FIRST_READ_DELAY
            assert sum("WATCHDOG" in d.fields for d in before) >= 2
            assert not any("READY" in d.fields for d in before)
            assert "VMs observed" in ready.fields["STATUS"]

            converged = systemd.wait_for("STATUS", "converged", timeout=90)
            assert converged.fields["STATUS"].startswith("cycle ")

            proc.send_signal(signal.SIGHUP)
            reloading = systemd.wait_for("RELOADING", "1", timeout=10)
            now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            # CLOCK_MONOTONIC is system-wide: the daemon's stamp is a moment just passed.
            assert 0 <= now_usec - int(reloading.fields["MONOTONIC_USEC"]) < 10_000_000
            reloaded = systemd.wait_for("READY", "1", after=reloading.at, timeout=10)
            assert reloaded.fields["STATUS"].startswith("reloaded")

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            stopping = systemd.wait_for("STOPPING", "1", after=reloaded.at, timeout=1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        datagrams = systemd.drain()
        pings = [d.at for d in datagrams if d.fields.get("WATCHDOG") == "1"]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # WATCHDOG_USEC=1 s: a ping every 0.5 s (a loaded machine may delay one, never many).
        assert len(gaps) >= 5
        assert 0.45 <= statistics.median(gaps) <= 0.6, gaps
        assert max(gaps) < 1.0, "systemd would have killed the daemon"
        assert not [d for d in datagrams if d.at > stopping.at and "WATCHDOG" in d.fields]
        text = " ".join(v for d in datagrams for v in d.fields.values())
        assert sim.token.rpartition("=")[2] not in text


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}, 42) is None


def test_no_notify_socket_no_notifier_and_a_vanished_socket_never_raises(tmp_path: Path) -> None:
    assert SystemdNotifier.from_environ({}) is None
    assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": "relative/path"}) is None
    gone = NotifySocket(str(tmp_path / "absent"))
    assert gone.send("READY=1") is False
    gone.close()


def test_abstract_namespace_address() -> None:
    import socket

    name = f"pd-test-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    try:
        sock = NotifySocket.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert sock is not None
        assert sock.send("READY=1", "STATUS=x")
        assert server.recv(100) == b"READY=1\nSTATUS=x"
        sock.close()
    finally:
        server.close()


async def test_watchdog_pings_only_while_the_loop_is_alive_and_stopping_ends_them() -> None:
    import asyncio
    import socket

    name = f"pd-wd-{time.monotonic_ns()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.setblocking(False)
    live = [False]
    sock = NotifySocket("@" + name)
    notifier = SystemdNotifier(sock, watchdog=0.02, alive=lambda: live[0])
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))

    def received() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(server.recv(100))
            except BlockingIOError:
                return out

    try:
        await asyncio.sleep(0.2)
        assert received() == []  # wedged: silence, so systemd's watchdog fires
        live[0] = True
        await asyncio.sleep(0.2)
        assert received().count(b"WATCHDOG=1") >= 3
        stop.set()
        await asyncio.wait_for(task, 2)
        assert received()[-1].startswith(b"STOPPING=1")
    finally:
        server.close()
