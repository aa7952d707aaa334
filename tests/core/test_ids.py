"""Ids and asset keys made from file names: safe, stable, distinct, idempotent."""

from __future__ import annotations

import pytest

from stacsync.core.ids import MAX_ID_LENGTH, item_id, safe_id

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


# -- item ids: the "searchable" scheme (catalog.item_ids) ------------------------------------


@pytest.mark.parametrize("raw", [*NAMES, "RGB.byte.tif", "Plot7/DSM.TIF", "a\udcffb.laz"])
def test_searchable_item_ids_hold_only_what_stac_apis_match(raw):
    made = item_id(raw)
    assert made and all(c.islower() or c.isdigit() or c in "-_" for c in made), made
    assert len(made) <= MAX_ID_LENGTH and not made.startswith(("-", "_"))
    assert item_id(made) == made
    assert safe_id(made) == made  # usable as a folder and file name, like every id


def test_searchable_item_ids_fold_case_and_dots_readably():
    assert item_id("RGB.byte.tif") == "rgb-byte-tif"
    assert item_id("missions/000123/ortho.tif") == "missions__000123__ortho-tif"
    assert item_id("flight_2023-06-01") == "flight_2023-06-01"
    # Anything else lossy gets a hash, so such names stay distinct.
    assert item_id("a b.tif") != item_id("a-b.tif")
    assert item_id("a b.tif").startswith("a-b-tif-")
    assert item_id("x" * 300) != item_id("x" * 301)


def test_names_that_fold_alike_share_an_id():
    """The documented price of readable ids: the pass reports the second file as a clash."""
    assert item_id("A.tif") == item_id("a.tif") == item_id("a-tif")


def test_keep_case_is_safe_id_and_unknown_schemes_are_refused():
    assert item_id("RGB.byte.tif", "keep-case") == safe_id("RGB.byte.tif") == "RGB.byte.tif"
    with pytest.raises(ValueError, match="unknown item id scheme"):
        item_id("x", "upper")
