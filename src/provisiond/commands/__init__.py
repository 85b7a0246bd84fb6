"""The CLI's subcommands, one module each.

Every module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` — a
function ``(args: argparse.Namespace) -> int`` returning the exit code. ``cli.COMMANDS`` lists the
modules; a command that does not work yet is not listed (a feature not built does not exist).
"""
