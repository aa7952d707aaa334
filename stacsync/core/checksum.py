"""Streamed file checksums, written as multihash hex so the algorithm travels with the value.

hashlib releases the GIL on large updates, so several files hash in parallel threads.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

ALGORITHMS = ("sha2-256", "none")
# multihash: varint code + varint digest length, then the digest (https://multiformats.io)
_MULTIHASH_PREFIX = {"sha2-256": "1220"}
_BUFFER = 1 << 20


def checksum_stream(stream: BinaryIO, algorithm: str = "sha2-256") -> str | None:
    """Hash a binary stream to multihash hex; None when checksums are switched off."""
    if algorithm == "none":
        return None
    if algorithm != "sha2-256":
        raise ValueError(f"unknown checksum algorithm {algorithm!r}")
    digest = hashlib.sha256()
    buffer = bytearray(_BUFFER)
    view = memoryview(buffer)
    while n := stream.readinto(buffer):
        digest.update(view[:n])
    return _MULTIHASH_PREFIX[algorithm] + digest.hexdigest()


def sha256_hex(data: bytes) -> str:
    """Plain sha256 of bytes in memory (rendered catalog files)."""
    return hashlib.sha256(data).hexdigest()
