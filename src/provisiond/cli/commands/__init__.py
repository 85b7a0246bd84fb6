"""The CLI's commands, one module each; ``cli.main.COMMANDS`` lists them and
``cli.arguments`` holds what they share (the parser type, settings flags, error output)."""
