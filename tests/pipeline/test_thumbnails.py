"""A pass draws a thumbnail only for the raster its item shows, and the catalog is unchanged.

The OFO demo tree has six rasters per mission; the item shows its orthomosaic.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from helpers import age, catalog_bytes

import stacsync.pipeline.thumbnails
from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.extract.shown import ThumbnailBar
from stacsync.pipeline.sync import rescan


def _thumbnails(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(Path(p).name for (p,) in conn.execute("SELECT path FROM thumbnail"))


def _build(root: Path, bars: bool, monkeypatch) -> tuple[Path, Path]:
    tree = make_demo_tree(root / "data", missions=2)
    age(tree.root)
    config = root / "stacsync.toml"
    config.write_text(demo_config_toml(tree, root / "catalog", root / "m.db"))
    if not bars:  # every raster draws its thumbnail, as before
        monkeypatch.setattr(stacsync.pipeline.sync, "with_thumbnail_bars", lambda work, db: work)
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
