"""``daemon.foreign_cache_ttl``: default 1,800 s, positive, never shorter than ``cache_ttl``."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisiond.core.errors import ConfigError
from provisiond.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("PROVISIOND_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "provisiond.yaml"
    p.write_text(text)
    return p


def test_defaults() -> None:
    daemon = load_settings().daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (300.0, 1800.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "daemon:\n  foreign_cache_ttl: 120\n",
            r"daemon: foreign_cache_ttl \(120 s\) must be at least cache_ttl \(300 s\)",
        ),
        (
            "daemon:\n  cache_ttl: 3600\n  foreign_cache_ttl: 1800\n",
            r"foreign_cache_ttl \(1800 s\) must be at least cache_ttl \(3600 s\)",
        ),
        ("daemon:\n  cache_ttl: 0\n", r"daemon\.cache_ttl: Input should be greater than 0"),
        ("daemon:\n  foreign_cache_ttl: 0\n", r"foreign_cache_ttl: Input should be greater"),
        ("daemon:\n  foreign_cache_ttl: soon\n", r"daemon\.foreign_cache_ttl: Input should be"),
    ],
)
def test_bad_foreign_cache_ttl(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_a_long_cache_ttl_alone_raises_the_foreign_default_with_it(tmp_path: Path) -> None:
    daemon = load_settings(_write(tmp_path, "daemon:\n  cache_ttl: 3600\n")).daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (3600.0, 3600.0)
    daemon = load_settings(_write(tmp_path, "daemon:\n  cache_ttl: 600\n")).daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (600.0, 1800.0)


def test_equal_ttls_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "daemon:\n  cache_ttl: 600\n  foreign_cache_ttl: 600\n")
    assert load_settings(path).daemon.foreign_cache_ttl == 600.0
    monkeypatch.setenv("PROVISIOND_DAEMON__FOREIGN_CACHE_TTL", "7200")
    assert load_settings(path).daemon.foreign_cache_ttl == 7200.0
