"""`stacsync init --layout ofo-s3`: the OFO bucket's config, printed and loaded as it is."""

from __future__ import annotations

import subprocess
import sys

from stacsync.config.load import load_settings

SWIFT = "https://js2.jetstream-cloud.org:8001/swift/v1/ofo-public"


def test_init_ofo_s3_prints_a_config_for_the_bucket(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stacsync.cli", "init", "--layout", "ofo-s3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (tmp_path / "stacsync.toml").write_text(done.stdout)
    settings = load_settings(tmp_path / "stacsync.toml")

    s3 = settings.source_s3
    assert s3 is not None and s3.url == "s3://ofo-public/drone/missions_03/"
    assert s3.endpoint_url == "https://js2.jetstream-cloud.org:8001" and s3.anonymous
    assert settings.href_rewrites == (("s3://ofo-public", SWIFT),)
    (c,) = settings.collections
    table = c.table
    assert table is not None and table.per_item and table.key is None
    # Fetched from the bucket into a cache beside the manifest, one file per mission.
    assert table.source_relpath == "{item}/metadata-mission/{item}_mission-metadata.gpkg"
    assert table.path == tmp_path / "stacsync.db.tables" / table.source_relpath
    placed = {
        "000421/photogrammetry_02/full/000421_ortho-dsm-mesh.tif": "orthomosaic",
        "000421/photogrammetry_01/full/000421_ortho-dsm-ptcloud.tif": "orthomosaic",
        "000421/photogrammetry_01/full/000421_chm-ptcloud.tif": "chm-ptcloud",
        "000421/photogrammetry_01/full/000421_dtm-ptcloud.tif": "dtm-ptcloud",
        "000421/photogrammetry_01/full/000421_points.copc.laz": "points",
        "000421/photogrammetry_02/thumbnails/000421_ortho-dsm-mesh.png": "thumbnail",
    }
    for path, key in placed.items():
        groups = c.match.search(path)
        assert groups is not None and groups["item"] == "000421", path
        assert c.asset_keys.get(groups["asset"], groups["asset"]) == key, path
    assert c.match.search("000421/images/000421_images.zip") is None
