"""Ids and asset keys made from file names: safe, stable, distinct, idempotent."""

from __future__ import annotations

import pytest

from stacsync.core.ids import MAX_ID_LENGTH, safe_id

NAMES = [
    "ortho",
    "missions/000123/ortho.tif",
    "../../etc/passwd",
    "..",
    ".",
    "",
    "a b",
    "ünïcode ø",
    "x" * 300,
    ".hidden",
    "a\\b",
    "con:nul|*?",
]


@pytest.mark.parametrize("raw", NAMES)
def test_safe_and_idempotent(raw):
    made = safe_id(raw)
    assert made and made not in {".", ".."}
    assert "/" not in made and "\\" not in made
    assert len(made) <= MAX_ID_LENGTH and made.isascii()
    assert not made.startswith((".", "-"))
    assert safe_id(made) == made


def test_plain_names_are_kept_and_paths_readable():
    assert safe_id("orthomosaic") == "orthomosaic"
    assert safe_id("missions/000123/ortho.tif") == "missions__000123__ortho.tif"


def test_distinct_names_stay_distinct():
    similar = ["a b", "a-b", "a_b", "a?b", "x" * 300, "x" * 301]
    assert len({safe_id(n) for n in similar}) == len(similar)
