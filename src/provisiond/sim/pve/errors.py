"""The errors a simulated handler raises; the server turns them into PVE's error responses.

PVE answers with the message's first line as the HTTP reason phrase and, since
libpve-http-server-perl 5.2.0, ``{"data": null, "message": "<msg>\\n"}`` as the body;
parameter errors add ``errors``. A Perl ``die "...\\n"`` keeps its newline in ``message``.
"""

from __future__ import annotations


class PveError(Exception):
    """An HTTP error as pveproxy sends it (500 unless a status is given)."""

    def __init__(
        self, message: str, *, status: int = 500, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message if message.endswith("\n") else message + "\n"
        self.errors = errors


class ParamError(PveError):
    """400 ``Parameter verification failed.`` with per-parameter texts."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Parameter verification failed.", status=400, errors=errors)


class TaskError(Exception):
    """Raised inside a task body: the task stops with this text as its exitstatus."""
