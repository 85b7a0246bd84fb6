"""``provisiond run`` as a process with MQTT configured, against a real Mosquitto and the
Proxmox simulator: the retained status through a ``kill -9`` (the last will) and a SIGTERM,
the pause/reconcile/resume commands acting on the real reconciler, and a daemon whose broker
is absent converging all the same.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    TIME_SCALE,
    Proc,
    converged,
    example,
    metrics_url,
    run_daemon,
    write_settings,
)

from metrics_support import get
from mosquitto_broker import USERS, Broker, free_port
from mqtt_support import PREFIX, Watcher, settings, watching
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e

STATUS = f"{PREFIX}/status"
DETAIL = f"{PREFIX}/status/detail"
RESULT = f"{PREFIX}/cmd/result"


def mqtt_section(broker: Broker, tmp: Path, **kw: Any) -> dict[str, Any]:
    """The test broker's settings as the daemon's ``mqtt:`` section; the password in a file."""
    password = tmp / "mqtt-password"
    password.write_text(USERS["provisiond"])
    s = settings(broker, **kw)
    return s.model_dump(mode="json", exclude={"password"}) | {"password_file": str(password)}


def daemon(tmp: Path, sim: SimHandle, mqtt: dict[str, Any], *, interval: float = 30.0) -> Proc:
    cfg = write_settings(tmp, sim, example("cps-gpu"), interval=interval, sections={"mqtt": mqtt})
    return run_daemon(tmp, cfg)


async def wait_log(proc: Proc, pred: Any, within: float = 90.0) -> dict[str, Any]:
    """``Proc.wait_for`` off the event loop, so the watcher keeps receiving meanwhile."""
    return await asyncio.to_thread(proc.wait_for, pred, within)


def status(w: Watcher) -> bytes | None:
    return w.on(STATUS)[-1].payload if w.on(STATUS) else None


def detail(w: Watcher) -> dict[str, Any]:
    return w.on(DETAIL)[-1].json() if w.on(DETAIL) else {}


def answers(w: Watcher, command: str) -> list[dict[str, Any]]:
    return [a for a in (m.json() for m in w.on(RESULT)) if a["command"] == command]


async def command(w: Watcher, name: str) -> None:
    assert w.client is not None
    await w.client.publish(f"{PREFIX}/cmd/{name}", b"", qos=1)


def mutating(sim: SimHandle) -> dict[tuple[str, str], int]:
    return {k: n for k, n in sim.request_counts().items() if k[0] != "GET" and n}


async def test_kill_9_leaves_the_retained_offline_by_the_last_will(
    broker: Broker, tmp_path: Path
) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        async with watching(broker) as w:
            proc = daemon(tmp_path, sim, mqtt_section(broker, tmp_path))
            try:
                await w.wait_for(lambda w: status(w) == b"online", within=30)
                proc.kill9()
            finally:
                if proc.popen.poll() is None:
                    proc.terminate()
            await w.wait_for(lambda w: status(w) == b"offline")
    async with watching(broker) as late:  # what a consumer arriving now sees
        await late.wait_for(lambda w: status(w) is not None)
        assert late.on(STATUS)[0].retain
        assert late.on(STATUS)[0].payload == b"offline"
    assert USERS["provisiond"] not in proc.log.read_text()


async def test_pause_acts_on_nothing_reconcile_cycles_at_once_resume_converges_sigterm_offline(
    broker: Broker, tmp_path: Path
) -> None:
    """With ``daemon.interval`` at ten minutes, every prompt cycle below was triggered."""
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        async with watching(broker) as w:
            proc = daemon(tmp_path, sim, mqtt_section(broker, tmp_path), interval=600.0)
            try:
                await wait_log(proc, converged)
                await w.wait_for(lambda w: detail(w).get("converged") is True, within=30)
                assert status(w) == b"online"

                await command(w, "pause")
                await w.wait_for(lambda w: detail(w).get("paused") is True)
                assert answers(w, "pause")[-1]["result"] == "ok"
                sim.reset_counts()
                sim.set_power(1035, "stopped")  # drift: the daemon would start it
                asked = time.monotonic()
                await command(w, "reconcile")
                seen = await wait_log(
                    proc, lambda e: e.get("event") == "plan_ready" and "mqtt" in e["triggers"]
                )
                assert time.monotonic() - asked < 1.0, "the reconcile command did not cycle at once"
                assert seen["actions"] >= 1  # the drift is seen, planned...
                await w.wait_for(lambda w: detail(w).get("converged") is False)
                await asyncio.sleep(0.5)  # ...and left alone: a follow-up would have acted by now
                assert mutating(sim) == {}
                vm = sim.vm(1035)
                assert vm is not None
                assert vm.status == "stopped"
                assert detail(w)["paused"] is True
                assert detail(w)["read_only"] is True

                proc.popen.send_signal(signal.SIGHUP)  # a reload keeps the pause in force
                await wait_log(proc, lambda e: e.get("event") == "settings_reloaded")
                await wait_log(
                    proc,
                    lambda e: e.get("event") == "plan_ready" and "reload" in str(e["triggers"]),
                )
                await asyncio.sleep(0.5)
                assert mutating(sim) == {}

                await command(w, "resume")
                await w.wait_for(lambda w: answers(w, "resume") != [])
                await w.wait_for(lambda w: detail(w).get("converged") is True, within=60)
                vm = sim.vm(1035)
                assert vm is not None
                assert vm.status == "running"
                assert sim.requests("POST", "/nodes/{node}/qemu/{vmid}/status/start") == 1
                assert detail(w)["paused"] is False
            finally:
                proc.terminate()
            assert proc.popen.returncode == 0, proc.tail()
            # a clean stop sends no will: the daemon published offline itself
            await w.wait_for(lambda w: status(w) == b"offline")


async def test_without_its_broker_the_daemon_converges_and_reports_mqtt_disconnected(
    tmp_path: Path,
) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        nobody = {
            "url": f"mqtt://127.0.0.1:{free_port()}",  # nothing listens there
            "topic_prefix": PREFIX,
            "reconnect_initial": 0.05,
            "reconnect_max": 0.3,
        }
        proc = daemon(tmp_path, sim, nobody)
        try:
            base = metrics_url(proc)
            await wait_log(proc, converged)
            text = get(base + "/metrics")[2].decode()
            assert "provisiond_mqtt_connected 0.0" in text
            assert 'provisiond_reconcile_total{result="success"}' in text
            failures = [e for e in proc.events() if e.get("event") == "mqtt_connection_failed"]
            assert len(failures) == 1, failures  # one line per distinct cause, not per retry
        finally:
            proc.terminate()
        assert proc.popen.returncode == 0, proc.tail()
