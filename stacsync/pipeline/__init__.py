"""One pass: list, diff, extract, commit, render, publish, tell.

The manifest's only writer; it wires sources, outputs and the keeper together.
"""
