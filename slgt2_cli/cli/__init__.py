"""The command line: one module per command, shared options in `options`, the app and its wiring in `app`.

In: command-line arguments. Out: calls into the library (`infer`, `train`, `scoring`, ...) and one-line
messages. Nothing here computes; every command builds a configuration and calls one library function.
"""

from slgt2_cli.cli.app import app, main

__all__ = ["app", "main"]
