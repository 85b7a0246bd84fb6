"""``provisiond sim serve`` as a child process, for the tests that run the command itself.

``serve`` starts it, reads the three lines tools parse (``url:``, ``ca:``, ``token:``) and, on
leaving the block, stops it with ``stop`` and keeps its stderr for the test to read;
``serve_to_exit`` runs one that should refuse to start.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from proxmoxer import ProxmoxAPI

INFERNO = Path(__file__).resolve().parents[2] / "config" / "examples" / "inferno" / "topology.yaml"


def serve_command(topology: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "provisiond", "sim", "serve", "--topology", str(topology), *args]


def serve_to_exit(topology: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a ``sim serve`` that is expected to refuse to start; its exit code and output."""
    return subprocess.run(
        serve_command(topology, *args), capture_output=True, text=True, timeout=30, check=False
    )


@dataclass
class Served:
    proc: subprocess.Popen[str]
    lines: list[str]  # the first three stdout lines: url, ca, token
    stderr: str = field(default="")  # set once the process has stopped

    def api(self) -> ProxmoxAPI:
        """A proxmoxer client built from the three lines (token auth, the printed CA)."""
        port = int(self.lines[0].rsplit(":", 1)[1])
        ca = self.lines[1].removeprefix("ca: ")
        m = re.fullmatch(r"token: (\S+)!(\S+)=(\S+)", self.lines[2])
        assert m is not None, self.lines
        return ProxmoxAPI(
            "127.0.0.1",
            port=port,
            user=m.group(1),
            token_name=m.group(2),
            token_value=m.group(3),
            verify_ssl=ca,
        )


@contextmanager
def serve(topology: Path, *args: str, stop: signal.Signals = signal.SIGTERM) -> Iterator[Served]:
    proc = subprocess.Popen(
        serve_command(topology, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(proc, [])
    try:
        assert proc.stdout is not None
        served.lines = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
        yield served
    finally:
        proc.send_signal(stop)
        _, served.stderr = proc.communicate(timeout=20)
