"""SHA-256 without loading OpenSSL: the digests of `hashlib.sha256`, for the no-change path.

Loading `_hashlib` costs ~2 ms of a ~40-ms no-change rescan. Python's own SHA-256 is slower per
byte (~4 ms a MB), and that path hashes ~100 bytes a listed file; bulk hashing uses hashlib.
"""

from __future__ import annotations

try:
    from _sha256 import sha256  # Python 3.11
except ImportError:  # pragma: no cover - 3.12 renamed the module; a build may lack both
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

__all__ = ["sha256"]
