"""Fixtures for the deployment tests.

``image_root``: the Dockerfile's build stage run here, as far as this machine allows (no
container engine): the files its COPY lines copy (what .dockerignore lets through) staged in a
temporary directory, and its RUN commands executed there, with the image paths (/src, /wheels,
/opt/provisiond) mapped into a temporary directory. The result is the virtual environment the
image ships, built from the wheel with the locked dependencies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import ROOT, dockerfile_stage


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    src = root / "src"
    src.mkdir()
    steps = dockerfile_stage("build")
    for step in steps:
        if step.startswith("COPY "):
            *sources, _dest = step.split()[1:]
            for source in sources:
                s = source.rstrip("/")
                origin = ROOT / s
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        src / s,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
                    )
                else:
                    shutil.copy2(origin, src / s)
    python = str(Path(sys.executable).resolve())
    for step in steps:
        if not step.startswith("RUN "):
            continue
        script = step.removeprefix("RUN ")
        script = script.replace("/wheels", str(root / "wheels"))
        script = script.replace("/opt/provisiond", str(root / "opt" / "provisiond"))
        script = re.sub(r"(^|&& )python ", rf"\g<1>{python} ", script)
        done = subprocess.run(
            ["sh", "-ec", script],
            cwd=src,
            capture_output=True,
            text=True,
            check=False,
            # The user's HOME: pip's download cache (the image build has its own layers).
            env={
                "PATH": "/usr/bin:/bin",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "HOME": str(Path.home()),
            },
            timeout=600,
        )
        assert done.returncode == 0, f"{script}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return root / "opt" / "provisiond"
