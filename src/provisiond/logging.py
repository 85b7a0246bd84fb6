"""structlog set-up: JSON lines for services, a readable console on a TTY.

Context is bound with ``structlog.contextvars`` (``reconcile_id``, ``action_id``, ``vm``,
``host``) so every line of an action carries it. Event names are stable snake_case
(``action_failed``). Secrets never reach the output: values under secret-looking keys are
masked, and every secret value handed to ``configure_logging`` is scrubbed from all strings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Literal, TextIO, cast

import structlog
from structlog.typing import Processor

from provisiond.core.redaction import Redactor

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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
