"""Logging: JSON lines off a TTY, bound context, and no secret ever in the output."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from provisiond.core.redaction import MASK
from provisiond.logging import configure_logging

SECRET = "9b1d2c3e-aaaa-bbbb-cccc-0123456789ab"


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_with_bound_context() -> None:
    buf = io.StringIO()
    configure_logging(fmt="auto", stream=buf)  # a StringIO is not a TTY → JSON
    structlog.contextvars.clear_contextvars()
    with structlog.contextvars.bound_contextvars(reconcile_id="r1", vm="k3s-cp1", host="h1"):
        structlog.get_logger().info("action_started", action_id="a1")
    (line,) = _lines(buf)
    assert line["event"] == "action_started"
    assert line["reconcile_id"] == "r1"
    assert line["vm"] == "k3s-cp1"
    assert line["host"] == "h1"
    assert line["action_id"] == "a1"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")


def test_level_filters() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", level="warning", stream=buf)
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    assert [ln["event"] for ln in _lines(buf)] == ["loud"]


def test_console_format_is_not_json() -> None:
    buf = io.StringIO()
    configure_logging(fmt="console", stream=buf)
    structlog.get_logger().info("hello", vm="x")
    out = buf.getvalue()
    assert "hello" in out
    assert "vm" in out
    assert not out.lstrip().startswith("{")


def test_secret_never_in_log_output() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf, secrets=[SECRET])
    log = structlog.get_logger()
    log.info("by_key", token_secret=SECRET, password="pw", headers={"Authorization": "x"})
    log.info("in_text", detail=f"PVEAPIToken=root@pam!ci={SECRET} failed")
    log.info("nested", calls=[{"url": f"https://h/?s={SECRET}"}])
    try:
        raise RuntimeError(f"boom {SECRET}")
    except RuntimeError as exc:
        log.error("failed", error=exc)
        log.exception("with_traceback")
    out = buf.getvalue()
    assert SECRET not in out
    assert "pw" not in [ln.get("password") for ln in _lines(buf)]
    lines = _lines(buf)
    assert lines[0]["token_secret"] == MASK
    assert lines[0]["headers"] == {"Authorization": MASK}
    assert MASK in str(lines[1]["detail"])
    assert lines[3]["error"] == f"RuntimeError: boom {MASK}"
    assert "RuntimeError" in str(lines[4]["exception"])


def test_default_stream_follows_sys_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(fmt="json")  # no stream: whatever sys.stderr is at each write
    structlog.get_logger().warning("first")
    assert '"event": "first"' in capsys.readouterr().err
    structlog.get_logger().warning("second")  # a new capture: still delivered, not to a stale one
    assert '"event": "second"' in capsys.readouterr().err
