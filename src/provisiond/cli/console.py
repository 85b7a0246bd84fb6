"""The rich ``Console`` every command prints with.

On a terminal, rich's own width (the terminal's). Off a terminal — a pipe, a file, a CI log —
rich would assume 80 columns and wrap long lines (a reason, a path) onto the next line; there
lines are not wrapped and tables take the width they need. ``COLUMNS``, when set, still wins.
"""

from __future__ import annotations

import os

from rich.console import Console

_UNWRAPPED_WIDTH = 1000  # wide enough for any table row; lines themselves are never wrapped


def console(*, stderr: bool = False) -> Console:
    out = Console(highlight=False, stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.soft_wrap = True
        out.width = _UNWRAPPED_WIDTH
    return out
