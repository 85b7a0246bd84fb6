"""The command line: argument parsing (``main``), the commands (``commands/``), the terminal
output (``report``, ``summary``, ``progress``) and the sandbox seam (``sandbox``, the only
module that reaches the simulator).

``provisiond = "provisiond.cli:run"`` is the console script; ``python -m provisiond`` runs it too.
"""

from provisiond.cli.main import main, run

__all__ = ["main", "run"]
