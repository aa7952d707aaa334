"""The command line: `main` builds the `stacsync` group; one module per command family.

main (rescan, init, demo, run), manifest, validate; common holds what they share.
"""
