"""The STAC API publisher against real pgstac and stac-fastapi-pgstac: pushes, extents, search.

Each test has a collection of its own in the session's API database (tests/stac_api_servers.py).
"""

from __future__ import annotations

import shutil

import pytest
from helpers import age
from stac_api_servers import api_items, assert_converged, get, search_ids, write_setup

import stacsync.pipeline.sync
from stacsync.pipeline.sync import rescan
from stacsync.publish.stac_api import comparable

PLACES = {  # a small box inside each file's footprint, far from the others
    "rgb-byte-tif": [-78.0, 24.0, -77.5, 24.5],
    "elev-tif": [-122.43, 37.80, -122.42, 37.805],
    "autzen_trim-laz": [-123.072, 44.050, -123.070, 44.051],
    "dataset_cog-tif": [-57.0, 73.0, -56.0, 73.5],
}


@pytest.fixture
def pushes(monkeypatch) -> list:
    """The summaries of the pushes the passes of this test made."""
    seen: list = []
    real = stacsync.pipeline.sync.push_api

    def recording(settings, db):
        summary = real(settings, db)
        seen.append(summary)
        return summary

    monkeypatch.setattr(stacsync.pipeline.sync, "push_api", recording)
    return seen


@pytest.fixture
def pgstac_toml(pgstac_server, stac_fastapi, monkeypatch) -> str:
    """`[stac_api]` for the session API's own database; the password only in PGPASSWORD."""
    from stac_api_servers import PG_PASSWORD

    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    return f'kind = "pgstac"\ndsn = "{pgstac_server.dsn("api")}"\n'


def extent(api_url: str, cid: str) -> list[float]:
    return get(f"{api_url}/collections/{cid}")["extent"]["spatial"]["bbox"][0]


def test_first_build_modify_delete_and_extents(
    tmp_path, testdata, stac_fastapi, pgstac_toml, pushes
) -> None:
    files = ["RGB.byte.tif", "elev.tif", "autzen_trim.laz"]
    config, cid, output = write_setup(tmp_path, pgstac_toml, files, testdata)
    rescan(config)
    api = stac_fastapi.url
    assert pushes[-1].items_upserted == 3 and pushes[-1].collections_written == 1
    assert search_ids(api, cid) == {"rgb-byte-tif", "elev-tif", "autzen_trim-laz"}
    for iid in ("rgb-byte-tif", "elev-tif", "autzen_trim-laz"):
        assert search_ids(api, cid, PLACES[iid]) == {iid}
    assert_converged(api, output, cid)
    small = extent(api, cid)
    assert small[3] < 45  # north of Oregon, no further

    # A new file far north: exactly one item goes, and the extent grows to cover it.
    shutil.copyfile(testdata / "dataset_cog.tif", tmp_path / "src" / "dataset_cog.tif")
    age(tmp_path / "src")
    rescan(config)
    assert pushes[-1].items_upserted == 1 and pushes[-1].items_deleted == 0
    assert search_ids(api, cid, PLACES["dataset_cog-tif"]) == {"dataset_cog-tif"}
    assert extent(api, cid)[3] > 74

    # A modified file: exactly that item is upserted, with its new footprint.
    shutil.copyfile(testdata / "RGB.byte.tif", tmp_path / "src" / "elev.tif")
    age(tmp_path / "src")
    before = api_items(api, cid)
    rescan(config)
    assert pushes[-1].items_upserted == 1
    after = api_items(api, cid)
    assert after["elev-tif"]["bbox"] == pytest.approx(after["rgb-byte-tif"]["bbox"])
    for iid in ("rgb-byte-tif", "autzen_trim-laz", "dataset_cog-tif"):
        assert comparable(after[iid]) == comparable(before[iid])

    # Deleted: gone from /search, and the extent shrinks back.
    (tmp_path / "src" / "dataset_cog.tif").unlink()
    rescan(config)
    assert pushes[-1].items_deleted == 1 and pushes[-1].items_upserted == 0
    assert search_ids(api, cid, PLACES["dataset_cog-tif"]) == set()
    assert "dataset_cog-tif" not in search_ids(api, cid)
    assert extent(api, cid)[3] < 45
    assert_converged(api, output, cid)

    # Nothing changed: nothing is sent.
    rescan(config)
    assert pushes[-1].requests == 0 and pushes[-1].behind == 0
