"""A pass draws a thumbnail only for the raster its item shows, and the catalog is unchanged.

The OFO demo tree has six rasters per mission; the item shows its orthomosaic.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from helpers import age, catalog_bytes

from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.extract.shown import ThumbnailBar
from stacsync.pipeline.sync import rescan
from stacsync.pipeline.thumbnails import ThumbnailBars


def _thumbnails(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(Path(p).name for (p,) in conn.execute("SELECT path FROM thumbnail"))


def _build(root: Path, bars: bool, monkeypatch) -> tuple[Path, Path]:
    tree = make_demo_tree(root / "data", missions=2)
    age(tree.root)
    config = root / "stacsync.toml"
    config.write_text(demo_config_toml(tree, root / "catalog", root / "m.db"))
    if not bars:  # every raster draws its thumbnail, as before
        monkeypatch.setattr(ThumbnailBars, "bar", lambda self, work: work)
    summary = rescan(config)
    monkeypatch.undo()
    assert summary.errors == 0 and summary.items_written == 2
    return config, root / "m.db"


def test_only_the_shown_thumbnail_is_drawn_and_the_catalog_is_the_same(tmp_path, monkeypatch):
    _build(tmp_path / "every", bars=False, monkeypatch=monkeypatch)
    _, db = _build(tmp_path / "shown", bars=True, monkeypatch=monkeypatch)
    assert len(_thumbnails(tmp_path / "every" / "m.db")) == 12  # 6 rasters × 2 missions
    assert _thumbnails(db) == ["orthomosaic.tif", "orthomosaic.tif"]
    assert _relative(tmp_path / "every") == _relative(tmp_path / "shown")


def _relative(root: Path) -> dict[str, bytes]:
    """The catalog's bytes with the tree's own location taken out of asset hrefs."""
    return {
        name: data.replace(str(root).encode(), b"ROOT")
        for name, data in catalog_bytes(root / "catalog").items()
    }


def test_a_changed_elevation_model_draws_nothing_a_changed_ortho_redraws(tmp_path, monkeypatch):
    config, db = _build(tmp_path, bars=True, monkeypatch=monkeypatch)
    full = next((tmp_path / "data").rglob("full"))
    shutil.copyfile(full / "dtm-ptcloud.tif", full / "dsm-mesh.tif")  # new bytes
    assert rescan(config).modified == 1
    assert _thumbnails(db) == ["orthomosaic.tif", "orthomosaic.tif"]
    # The ortho replaced by an elevation model: no longer RGB, but still keyed orthomosaic.
    shutil.copyfile(full / "dtm-ptcloud.tif", full / "orthomosaic.tif")
    assert rescan(config).modified == 1
    assert _thumbnails(db) == ["orthomosaic.tif", "orthomosaic.tif"]


def test_the_bar_lets_a_raster_through_only_when_it_can_be_shown():
    from stacsync.core.records import Band, RasterInfo

    def raster(*types: str) -> RasterInfo:
        return RasterInfo(
            width=1,
            height=1,
            bands=tuple(Band(data_type=t) for t in types),
            transform=(1, 0, 0, 0, -1, 0),
            resolution=(1, 1),
            resolution_m=None,
            overviews=(),
            tiled=False,
            block_shape=(1, 1),
            compression=None,
            is_cog=False,
        )

    behind_ortho = ThumbnailBar("dsm-mesh", 0, "orthomosaic")
    assert not behind_ortho.draws(raster("float32"))
    assert behind_ortho.draws(raster("uint8", "uint8", "uint8"))  # an RGB image ranks first
    behind_dsm = ThumbnailBar("chm-mesh", 1, "dsm-mesh")
    assert behind_dsm.draws(raster("float32"))  # chm-mesh sorts before dsm-mesh
    assert not ThumbnailBar("notes", 1, "dsm").draws(raster("float32"))


def test_each_raster_gets_the_best_of_its_items_other_rasters(tmp_path):
    # The bars are tallied per item (best two, and how often the best is), never over a list
    # of every Work: checked against "the least (rank, key) of every other raster of the item"
    # on items that repeat keys, rank them alike and hold point clouds.
    import random

    from stacsync.catalog.layout import Placement
    from stacsync.core.records import SourceEntry
    from stacsync.extract.shown import key_rank
    from stacsync.manifest.db import Manifest
    from stacsync.pipeline.examine import Work

    keys = ["ortho", "orthomosaic", "dsm", "dtm-ptcloud", "chm", "ndvi", "zeta", "alpha"]
    pick = random.Random(17)
    works = []
    for n in range(400):
        item, key = f"m{pick.randrange(40)}", pick.choice(keys)
        suffix = ".laz" if pick.random() < 0.15 else ".tif"
        place = Placement("c", item, key, None, {}, None)
        works.append(Work(SourceEntry(f"{item}/{n}{suffix}", 1, 1), place, None, None, False))
    bars = ThumbnailBars()
    for w in works:
        bars.add(w)
    with Manifest.open_writer(tmp_path / "m.db") as db:
        bars.finish(db)
    rasters = [w for w in works if w.entry.path.endswith(".tif")]
    with_bars = 0
    for w in works:
        others = [
            (key_rank(o.placement.asset_key), o.placement.asset_key)
            for o in rasters
            if o is not w and o.placement.item_id == w.placement.item_id
        ]
        got = bars.bar(w).thumbnail
        if w in rasters and others:
            want = ThumbnailBar(w.placement.asset_key, *min(others))
            assert got == want
            with_bars += 1
        else:
            assert got is None
    assert with_bars > 300
