"""Benchmarks for stacsync: whole-process timings against a rio-stac + pystac rebuild.

Not part of the test suite; `python -m benchmarks.run` prints the figures (see README.md).
"""
