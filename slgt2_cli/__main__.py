"""`python -m slgt2_cli` runs the command-line interface."""

from slgt2_cli.cli import main

main()
