"""``provisiond run`` as a process serves its metrics and probes: not ready until the first
observation, a scrape that ``promtool check metrics`` accepts, and nothing secret in it.

The daemon converges cps-gpu on the Proxmox simulator through the real proxmoxer client; its
metrics endpoint binds a free loopback port (``e2e_support.write_settings``), which it logs.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e_support import (
    TIME_SCALE,
    converged,
    example,
    metrics_url,
    run_daemon,
    start,
    write_settings,
)
from prometheus_client.parser import text_string_to_metric_families

from metrics_support import PROMTOOL, free_port, get
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.e2e


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def wait_ready(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while get(base + "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.05)


def test_run_is_ready_after_its_first_observation_and_its_scrape_passes_promtool(
    tmp_path: Path,
) -> None:
    with running_simulator("cps-gpu", time_scale=TIME_SCALE) as sim:
        secret = sim.token.rpartition("=")[2]
        # the first observation's cluster-wide read waits until the test lets it through
        held = sim.hold_request("GET", "/cluster/resources")
        proc = run_daemon(tmp_path, write_settings(tmp_path, sim, example("cps-gpu")))
        try:
            base = metrics_url(proc)
            assert held.wait(30), proc.tail()
            status, _, body = get(base + "/readyz")
            assert (status, body) == (503, b"first observation not done yet\n")
            assert get(base + "/healthz")[0] == 200  # alive, just not observed yet
            held.release()
            wait_ready(base)
            proc.wait_for(converged, timeout=90)
            status, headers, scrape = get(base + "/metrics")
            assert status == 200
            assert headers["Content-Type"].startswith("text/plain")
            check = subprocess.run(
                [PROMTOOL, "check", "metrics"], input=scrape, capture_output=True, check=False
            )
            assert check.returncode == 0, check.stdout + check.stderr
            text = scrape.decode()
            gpus = "provisiond_gpu_devices"
            claimed = {"host": "cit-gpu-01", "mapping": "a100-40g", "state": "claimed"}
            assert value(text, gpus, **claimed) == 8
            assert (value(text, "provisiond_reconcile_total", result="success") or 0) >= 1
            clones = value(text, "provisiond_actions_total", action="clone", result="succeeded")
            assert clones == 8
            tasks = "provisiond_proxmox_task_duration_seconds_count"
            assert value(text, tasks, type="qmclone") == 8  # the writer timed every clone
            assert value(text, "provisiond_spec_valid") == 1
            assert "provisiond_mqtt_connected" not in text  # MQTT is not configured
            openmetrics = get(base + "/metrics", accept="application/openmetrics-text")[2]
            assert openmetrics.endswith(b"# EOF\n")
            for body in (scrape, openmetrics, get(base + "/healthz")[2]):
                assert secret.encode() not in body
            assert secret not in proc.log.read_text()
        finally:
            proc.terminate()
    assert proc.popen.returncode == 0, proc.tail()


def test_demo_serves_metrics_on_the_bind_it_was_given(tmp_path: Path) -> None:
    bind = f"127.0.0.1:{free_port()}"
    proc = start(
        tmp_path, "demo", "--metrics-bind", bind, "--time-scale", str(TIME_SCALE), name="demo"
    )
    try:
        deadline = time.monotonic() + 90
        while "Still reconciling" not in proc.log.read_text(errors="replace"):
            assert proc.popen.poll() is None, proc.tail()
            assert time.monotonic() < deadline, proc.tail()
            time.sleep(0.1)
        assert f"metrics   http://{bind}/metrics" in proc.log.read_text()
        wait_ready(f"http://{bind}")
        text = get(f"http://{bind}/metrics")[2].decode()
        claimed = {"host": "cit-gpu-01", "mapping": "a100-40g", "state": "claimed"}
        assert value(text, "provisiond_gpu_devices", **claimed) == 8
        assert value(text, "provisiond_actions_total", action="start", result="succeeded") == 8
    finally:
        proc.popen.send_signal(signal.SIGINT)  # Ctrl-C
        proc.popen.wait(30)
