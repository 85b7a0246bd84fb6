"""Helpers for the deployment tests: a stand-in for systemd's notify socket, the daemon as a
process against the Proxmox simulator, and the project's tools (helm, hadolint, systemd-analyze).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tools_support import tool

__all__ = ["tool"]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "provisiond"
UNIT_DIR = ROOT / "deploy" / "systemd"


@dataclass
class Datagram:
    at: float  # time.monotonic() when received
    fields: dict[str, str]


@dataclass
class NotifyListener:
    """A Unix datagram socket standing in for systemd's ``$NOTIFY_SOCKET``."""

    path: str
    sock: socket.socket
    received: list[Datagram] = field(default_factory=list)

    def drain(self) -> list[Datagram]:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.received
            lines = data.decode().split("\n")
            self.received.append(
                Datagram(time.monotonic(), dict(ln.split("=", 1) for ln in lines if "=" in ln))
            )

    def wait_for(
        self, key: str, value: str | None = None, *, after: float = 0.0, timeout: float = 60.0
    ) -> Datagram:
        """The first datagram received after ``after`` (so far or later) carrying ``key``
        (whose value contains ``value``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for d in self.drain():
                if d.at <= after:
                    continue
                if key in d.fields and (value is None or value in d.fields[key]):
                    return d
            time.sleep(0.02)
        got = [d.fields for d in self.received][-10:]
        raise AssertionError(f"no {key}={value} within {timeout}s; last datagrams: {got}")


@contextmanager
def notify_listener() -> Iterator[NotifyListener]:
    # A short directory: a Unix socket path must fit in 108 bytes (pytest's tmp_path may not).
    directory = tempfile.mkdtemp(prefix="pd-notify-", dir="/tmp")
    path = str(Path(directory) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield NotifyListener(path, sock)
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def start_daemon(
    args: list[str], log: Path, env: Mapping[str, str] = {}
) -> subprocess.Popen[bytes]:
    """``provisiond <args>`` as a process, its output (JSON log lines) into ``log``."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full.pop("PROVISIOND_CONFIG", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "provisiond", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full,
        )


def dockerfile_stage(name: str) -> list[str]:
    """The instructions of one stage (``FROM … AS name``), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("FROM "):
            inside = line.endswith(f" AS {name}")
            continue
        if inside:
            out.append(line)
    return out
