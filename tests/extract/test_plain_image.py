"""PNG files are plain image assets: described without a read, never taken for rasters."""

from __future__ import annotations

import io
import warnings

import pytest

from stacsync.core.records import AssetMeta
from stacsync.extract.dispatch import IMAGE_KIND, extract_file, extract_stream, reader_for


@pytest.fixture
def png(tmp_path, testdata):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with rasterio.open(testdata / "RGB.byte.tif") as src:
        data = src.read(out_shape=(3, 16, 16))
    path = tmp_path / "000101_ortho-dsm-mesh.PNG"  # case-insensitive, as the globs are
    profile = {"driver": "PNG", "width": 16, "height": 16, "count": 3, "dtype": "uint8"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture: no place, rightly
        with rasterio.open(path, "w", **profile) as out:
            out.write(data)
    return path


def test_a_png_is_a_plain_image_with_no_crs_or_geometry(png):
    meta = extract_file(str(png))
    assert reader_for(png.name) == IMAGE_KIND
    assert (meta.kind, meta.media_type) == (IMAGE_KIND, "image/png")
    assert meta.crs_code is None and meta.geometry_4326 == {}
    assert meta.raster is None and meta.pointcloud is None and meta.thumbnail is None
    assert AssetMeta.from_json(meta.to_json()) == meta  # the manifest keeps it as it is


def test_a_png_is_never_opened(png):
    opened = []

    def open_stream():
        opened.append(1)
        return io.BytesIO(png.read_bytes())

    meta = extract_stream(png.name, png.stat().st_size, open_stream)
    assert meta == extract_file(str(png)) and opened == []


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("a/b.TIF", "raster"),
        ("a/b.tiff", "raster"),
        ("x.y/points.LaZ", "pointcloud"),
        ("t.las", "pointcloud"),
        ("thumb.Png", IMAGE_KIND),
        (".tif", None),  # a hidden file named ".tif" has no suffix
        ("a/.tif", None),
        ("a.tif/readme", None),  # a folder's suffix is not the file's
        ("a.tif.", None),
        ("a..tif", "raster"),
        ("no-suffix", None),
        ("b.tar.gz", None),
    ],
)
def test_the_reader_goes_by_the_names_suffix_as_pathlib_reads_it(path, kind):
    from pathlib import PurePosixPath

    assert reader_for(path) == kind
    assert reader_for(str(PurePosixPath(path))) == kind
