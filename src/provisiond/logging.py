"""structlog set-up: JSON lines for services, a readable console on a TTY.

Context is bound with ``structlog.contextvars`` (``reconcile_id``, ``action_id``, ``vm``,
``host``) so every line of an action carries it. Event names are stable snake_case
(``action_failed``). Secrets never reach the output: values under secret-looking keys are
masked, and every secret value handed to ``configure_logging`` is scrubbed from all strings.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "**********"
_SECRET_KEY = re.compile(r"secret|password|passwd|authorization|cookie|csrf|ticket", re.IGNORECASE)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class Redactor:
    """A processor that masks secret fields and scrubs known secret values from every string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, MutableMapping):
            return {k: self._field(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, BaseException):
            return self._scrub(f"{type(value).__name__}: {value}")
        return value

    def _field(self, key: str, value: Any) -> Any:
        if _SECRET_KEY.search(key) and value is not None:
            return MASK
        return self._scrub(value)

    def __call__(self, _logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        return {k: self._field(k, v) for k, v in event_dict.items()}


class _Stderr:
    """``sys.stderr`` looked up at every write: the stream may be replaced after configuration
    (test capture, a daemon re-opening its descriptors), and a stale one may be closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    *,
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog for the process. Called once by ``app``/``cli``, never by libraries."""
    # _Stderr has the three methods structlog and this function use; cast for the type only.
    out = stream if stream is not None else cast("TextIO", _Stderr())
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        Redactor(secrets),
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
