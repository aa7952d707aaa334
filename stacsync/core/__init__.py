"""Shared types every room uses: errors, records, ids, file names, checksums.

Nothing here imports another stacsync package.
"""
