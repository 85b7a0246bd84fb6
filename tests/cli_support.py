"""``provisiond`` run as a user runs it, for the tests about its exit codes and output."""

from __future__ import annotations

import os
import subprocess
import sys


def provisiond(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m provisiond ARGS`` with no ``PROVISIOND_*`` settings from the test's own
    environment (``env`` adds some), stdin closed (no TTY: no prompt), output captured."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
    return subprocess.run(
        [sys.executable, "-m", "provisiond", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**clean, **(env or {})},
        check=False,
    )
