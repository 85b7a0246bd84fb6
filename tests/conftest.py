"""Shared fixtures. Keep each group's fixtures together under its heading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import settings

# Property tests draw the same examples on every run ("repeatable": derandomized), so the suite's
# verdict and its 100 % core coverage gate do not depend on a random seed — a CI run is
# reproducible. HYPOTHESIS_PROFILE=explore draws new random examples (e.g. `HYPOTHESIS_PROFILE=
# explore scripts/test tests/core`) to search further.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def pytest_configure(config: pytest.Config) -> None:
    """The CLI wraps its output at ``COLUMNS`` when that is set and at no width off a terminal;
    pytest-xdist's workers export ``COLUMNS=80``. The commands run by the tests see what a pipe
    sees (tests that are about a width set ``COLUMNS`` themselves)."""
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests (whole daemons as processes: the longest files) run first, so that
    ``scripts/test``'s two pytest-xdist workers (``--dist loadfile``: a file stays on one worker)
    do not end with one long file on one worker while the other idles. Stable otherwise."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """structlog's configuration is process-global: a test that configures logging (a level
    filter, a stream) must not leak it into the next test's ``capture_logs``."""
    yield
    structlog.reset_defaults()


# -- Proxmox VE API simulator (provisiond.sim.pve) -----------------------------------------------


@dataclass
class PveSim:
    """A running simulator: ``api``, a real proxmoxer client (TLS verified); ``sim``, its handle."""

    api: Any
    sim: Any  # provisiond.sim.pve.SimHandle


@pytest.fixture
def pve_sim(request: pytest.FixtureRequest) -> Iterator[PveSim]:
    """The simulator on a free port, seeded from an example topology (default ``cps-gpu``).

    Choose another with ``@pytest.mark.parametrize("pve_sim", ["astronomy-lab"], indirect=True)``.
    """
    from provisiond.sim.pve.testing import proxmox_client, running_simulator

    topology = getattr(request, "param", "cps-gpu")
    with running_simulator(topology, time_scale=0.005) as sim:
        yield PveSim(api=proxmox_client(sim), sim=sim)


# -- MQTT broker (Mosquitto) ----------------------------------------------------------------------
# The helper modules beside this file (``mosquitto_broker``, ``mqtt_support``, ``metrics_support``)
# are importable from every test directory: tests/mqtt, tests/metrics and tests/e2e share them.


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    """A real Mosquitto on free ports (plain and TLS listeners, a password file)."""
    from mosquitto_broker import Broker

    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()
