"""A real Mosquitto broker for tests: plain and TLS listeners on free ports, a password file.

Started and stopped by the test (``start``/``stop``/``restart``); the ports stay the same across
restarts so a client's reconnect finds it again. No persistence: a restart forgets retained
messages and sessions, like a broker that lost its disk.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from provisiond.sim.certs import CertFiles, generate

USERS = {"provisiond": "pd-broker-pass-7Q2", "watcher": "watcher-pass-Z9x"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"mosquitto did not listen on {port}")


@dataclass
class Broker:
    directory: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    certs: CertFiles | None = None

    def __post_init__(self) -> None:
        if shutil.which("mosquitto") is None:  # pragma: no cover - the test command installs it
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.certs = generate(self.directory / "tls")
        passwd = self.directory / "passwd"
        passwd.touch()
        for user, password in USERS.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), user, password],
                check=True,
                capture_output=True,
            )
        passwd.chmod(0o600)
        run_as = "root" if os.geteuid() == 0 else ""  # as root it would switch to "mosquitto"
        self.log = self.directory / "mosquitto.log"
        (self.directory / "mosquitto.conf").write_text(
            "\n".join(
                [
                    *([f"user {run_as}"] if run_as else []),
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    "persistence false",
                    f"log_dest file {self.log}",
                    "log_type all",
                    f"listener {self.port} 127.0.0.1",
                    f"listener {self.tls_port} 127.0.0.1",
                    f"cafile {self.certs.ca}",
                    f"certfile {self.certs.cert}",
                    f"keyfile {self.certs.key}",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://localhost:{self.tls_port}"

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)
        _wait_port(self.tls_port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
