"""`python -m stacsync.cli`: the same as the `stacsync` command."""

from stacsync.cli.fast import main

main()
