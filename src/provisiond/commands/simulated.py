"""Shared by ``plan --sim`` and ``demo``: settings that point the daemon at an in-process simulator.

The simulator's token is full administrator and its CA is generated per start, so TLS stays
verified end to end.
"""

from __future__ import annotations

from pathlib import Path

from provisiond.settings import Settings
from provisiond.sim.pve.server import SimServer


def settings_for(
    server: SimServer,
    spec_paths: list[Path],
    *,
    interval: float = 60.0,
    log_level: str = "warning",
) -> Settings:
    tokenid, _, secret = server.token.rpartition("=")
    return Settings(
        proxmox={
            "url": server.url,
            "token_id": tokenid,
            "token_secret": secret,
            "ca_bundle": server.ca_path,
        },
        spec={"paths": spec_paths},
        daemon={"interval": interval},
        log={"format": "console", "level": log_level},
    )
