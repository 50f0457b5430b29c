"""`python -m executor` is the `executor` command."""

from executor.cli.app import main

main()
