"""`python -m stacsync.cli`: the same as the `stacsync` command."""

from stacsync.cli.main import main

main()
