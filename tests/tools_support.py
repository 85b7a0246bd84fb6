"""Where the tests find the real tools they run (helm, kubectl, hadolint, …).

``scripts/tools`` (called by ``scripts/test``) installs into ``.tools/bin`` whatever the machine
lacks or has too old (Debian's kubectl 1.20 evicts through policy/v1beta1), so ``.tools/bin``
comes first, then the PATH. A missing tool fails the test: no silent skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"


def tool(name: str) -> str:
    found = shutil.which(name, path=str(TOOLS)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run scripts/tools (scripts/test does)")
    return found
