"""`python -m slgt2_cli` runs the command-line interface."""

from slgt2_cli.cli.app import main

main()
