"""The fast path's SHA-256 gives hashlib's digests (a witness written by either is read by both)."""

import hashlib

import pytest

from stacsync.core.sha256 import sha256


@pytest.mark.parametrize("data", [b"", b"abc", "é\udcff".encode("utf-8", "surrogateescape") * 9999])
def test_the_same_digest_as_hashlib(data: bytes):
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert sha256 is not hashlib.sha256  # not OpenSSL's: that is what it saves
