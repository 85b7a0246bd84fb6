"""``python -m provisiond``."""

from provisiond.cli import run

run()
