"""CRS identity: files whose CRS carries no authority codes still get the EPSG code they are.

GeoTIFFs and LAS files are written here from WKT stripped of every AUTHORITY[...] / ID[...]
node, then described by the real extraction (`extract_file`); a code must come out only when
the CRS is the EPSG one (a wrong code is worse than none).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import laspy
import numpy as np
import pytest
import rasterio
from affine import Affine
from laspy.vlrs.known import WktCoordinateSystemVlr
from pyproj import CRS, Transformer
from pyproj.crs import CompoundCRS
from pyproj.enums import WktVersion

from stacsync.catalog.items import AssetInput, ItemInput, render_item
from stacsync.catalog.links import Links
from stacsync.core.records import AssetMeta
from stacsync.extract.crs import identify_crs
from stacsync.extract.dispatch import extract_file

# Node names end a word: SPHEROID[ and GRID[ are not ID[.
_AUTHORITY = re.compile(r',\s*(?:AUTHORITY|ID)\["[^"]*",\s*(?:"[^"]*"|[^\],]*)\]')
_LEFT = re.compile(r"(?<![A-Z_])(?:AUTHORITY|ID)\[")

# Common codes: UTM zones both hemispheres, NAD83 UTM, northing-first projected CRSs (3035,
# 31467, 3006, 2193: GDAL writes them easting first, PROJ then finds them only at confidence
# 50), Swiss, Web Mercator, geographic, US state planes in feet and NAD83(2011), British, Dutch.
CODES = [
    32610, 32611, 32633, 32755, 32618, 26910, 3035, 31467, 3006, 2193, 2056, 3857, 4326,
    2227, 2994, 6414, 27700, 28992, 2154, 25832, 5070,
]  # fmt: skip

# Not an EPSG CRS although its name or parameters look like one.
_ODD_TM = (
    'PROJCS["custom TM",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0.5],'
    'PARAMETER["central_meridian",13.37],PARAMETER["scale_factor",0.99987],'
    'PARAMETER["false_easting",123456.7],PARAMETER["false_northing",-98765],'
    'UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)


def strip_ids(wkt: str) -> str:
    out = _AUTHORITY.sub("", wkt)
    assert not _LEFT.search(out), out
    return out


def stripped(code: int, version: WktVersion = WktVersion.WKT1_GDAL) -> str:
    return strip_ids(CRS.from_epsg(code).to_wkt(version))


def _inside(crs: CRS, area_code: int) -> tuple[float, float]:
    """A point well inside the EPSG code's area of use, in `crs`'s x/y (easting first)."""
    area = CRS.from_epsg(area_code).area_of_use
    assert area is not None
    lon, lat = (area.west + area.east) / 2, (area.south + area.north) / 2
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return to_crs.transform(lon, lat)


def write_tif(path: Path, wkt: str, area_code: int) -> Path:
    crs = CRS.from_wkt(wkt)
    x, y = _inside(crs, area_code)
    size = 0.001 if crs.is_geographic else 10.0
    grid = Affine.translation(x, y) @ Affine.scale(size, -size)
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
        crs=rasterio.crs.CRS.from_wkt(wkt), transform=grid,
    ) as dst:  # fmt: skip
        dst.write(np.full((1, 8, 8), 7, dtype="uint8"))
    return path


def write_las(path: Path, wkt: str, area_code: int) -> Path:
    horizontal = CRS.from_wkt(wkt)
    if horizontal.is_compound:
        horizontal = horizontal.sub_crs_list[0]
    x, y = _inside(horizontal, area_code)
    step = 0.0001 if horizontal.is_geographic else 5.0
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([step / 100] * 2 + [0.01])
    header.offsets = np.array([round(x), round(y), 0.0])
    header.vlrs.append(WktCoordinateSystemVlr(wkt))
    header.global_encoding.wkt = True
    las = laspy.LasData(header)
    las.x = np.array([x, x + step, x + 2 * step])
    las.y = np.array([y, y + step, y - step])
    las.z = np.array([10.0, 12.0, 11.0])
    las.write(str(path))
    return path


def gdal_epsg(path: Path) -> int | None:
    """GDAL's own identification of the file's CRS (rasterio's CRS.to_epsg())."""
    with rasterio.open(path) as src:
        return src.crs.to_epsg()


def describe(path: Path) -> AssetMeta:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return extract_file(str(path))


def render_asset(meta: AssetMeta) -> dict:
    asset = AssetInput(key="data", href="/data/x", title=None, size=1, checksum=None, meta=meta)
    item = ItemInput(
        collection_id="c", item_id="i", datetime="2024-01-01T00:00:00Z", properties={},
        assets=(asset,),
    )  # fmt: skip
    return render_item(item, Links(None))["assets"]["data"]


# --- GeoTIFFs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [WktVersion.WKT1_GDAL, WktVersion.WKT2_2019])
@pytest.mark.parametrize("code", CODES)
def test_geotiff_from_stripped_wkt_gets_its_epsg_code(
    tmp_path: Path, code: int, version: WktVersion
) -> None:
    path = write_tif(tmp_path / f"{code}.tif", stripped(code, version), code)
    meta = describe(path)
    assert meta.crs_code == f"EPSG:{code}"
    assert gdal_epsg(path) == code  # GDAL names it so too
    assert render_asset(meta)["proj:code"] == f"EPSG:{code}"


def test_stripped_3035_is_northing_first_in_epsg_but_still_identified(tmp_path: Path) -> None:
    # The case: GDAL writes the axes easting first; PROJ alone says 50 (not equivalent).
    wkt = stripped(3035)
    meta = describe(write_tif(tmp_path / "laea.tif", wkt, 3035))
    epsg = CRS.from_epsg(3035)
    assert [a.direction for a in epsg.axis_info] == ["north", "east"]
    assert CRS.from_wkt(meta.crs_wkt2).list_authority("EPSG", min_confidence=0)[0].confidence < 70
    assert meta.crs_code == "EPSG:3035"
    asset = render_asset(meta)
    assert asset["proj:code"] == "EPSG:3035" and "proj:wkt2" not in asset


def test_custom_transverse_mercator_gets_no_code(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "odd.tif", _ODD_TM, 32633)
    meta = describe(path)
    assert meta.crs_code is None and gdal_epsg(path) is None
    asset = render_asset(meta)
    assert asset["proj:code"] is None
    assert CRS.from_wkt(asset["proj:wkt2"]).equals(CRS.from_wkt(_ODD_TM))


@pytest.mark.parametrize(
    ("code", "parameter", "value"),
    [
        (3035, "false_easting", 4321001),  # same name as EPSG:3035, another grid
        (32633, "central_meridian", 14),  # "UTM zone 33N" that is not zone 33
        (2056, "scale_factor", 1.0001),
        (28992, "false_northing", 463001),
    ],
)
def test_lookalike_of_an_epsg_crs_gets_no_code(
    tmp_path: Path, code: int, parameter: str, value: float
) -> None:
    wkt = re.sub(rf'(PARAMETER\["{parameter}",)[^\]]*\]', rf"\g<1>{value}]", stripped(code))
    assert wkt != stripped(code)
    path = write_tif(tmp_path / "near.tif", wkt, code)
    assert describe(path).crs_code is None and gdal_epsg(path) is None


def test_same_parameters_other_datum_is_not_confused(tmp_path: Path) -> None:
    # NAD83(2011) / California Albers and NAD83 / California Albers differ only by datum.
    assert describe(write_tif(tmp_path / "a.tif", stripped(6414), 6414)).crs_code == "EPSG:6414"
    assert describe(write_tif(tmp_path / "b.tif", stripped(3310), 3310)).crs_code == "EPSG:3310"


# --- point clouds -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [32610, 32633, 3035, 2056, 2994, 26910, 28992, 4326])
def test_las_with_stripped_wkt_vlr_gets_its_epsg_code(tmp_path: Path, code: int) -> None:
    meta = describe(write_las(tmp_path / f"{code}.las", stripped(code), code))
    assert meta.crs_code == f"EPSG:{code}"


def test_las_with_custom_crs_gets_no_code(tmp_path: Path) -> None:
    meta = describe(write_las(tmp_path / "odd.las", _ODD_TM, 32633))
    assert meta.crs_code is None
    assert render_asset(meta)["proj:wkt2"].startswith("PROJCRS")


# --- compound CRSs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "version"),
    [
        (7415, WktVersion.WKT1_GDAL),  # Amersfoort / RD New + NAP height
        (7415, WktVersion.WKT2_2019),
        (5972, WktVersion.WKT1_GDAL),  # ETRS89 / UTM zone 32N + NN2000 height
        (3901, WktVersion.WKT1_GDAL),  # KKJ / Finland Uniform + N60: northing first in EPSG
    ],
)
def test_compound_with_an_epsg_code_gets_the_compound_code(
    tmp_path: Path, code: int, version: WktVersion
) -> None:
    wkt = stripped(code, version)
    horizontal = CRS.from_epsg(code).sub_crs_list[0].to_epsg()
    meta = describe(write_las(tmp_path / f"{code}.las", wkt, horizontal))
    assert meta.crs_code == f"EPSG:{code}"
    asset = render_asset(meta)
    assert asset["proj:code"] == f"EPSG:{code}" and "proj:wkt2" not in asset


@pytest.mark.parametrize("strip", [False, True])
def test_compound_without_an_epsg_code_is_written_as_wkt2(tmp_path: Path, strip: bool) -> None:
    # NAD83 / UTM 10N + NAVD88 height: both parts are EPSG CRSs, the pair has no EPSG code.
    compound = CompoundCRS("NAD83 / UTM zone 10N + NAVD88 height", [
        CRS.from_epsg(26910), CRS.from_epsg(5703)
    ])  # fmt: skip
    wkt = compound.to_wkt(WktVersion.WKT1_GDAL)
    wkt = strip_ids(wkt) if strip else wkt
    meta = describe(write_las(tmp_path / "c.las", wkt, 26910))
    assert meta.crs_code is None  # not the horizontal part's code: it would hide the heights
    asset = render_asset(meta)
    assert asset["proj:code"] is None
    written = CRS.from_wkt(asset["proj:wkt2"])
    assert written.is_compound and written.equals(CRS.from_wkt(wkt))
    if not strip:  # the horizontal code stays inside the WKT2 (its ID), where WKT2 allows it
        assert written.sub_crs_list[0].to_epsg(min_confidence=100) == 26910


def test_real_compound_las_has_no_code_and_keeps_its_wkt2(testdata: Path) -> None:
    meta = describe(testdata / "autzen-bmx-2010.las")
    assert meta.crs_code is None
    asset = render_asset(meta)
    assert asset["proj:code"] is None and "NAVD88" in asset["proj:wkt2"]
    assert CRS.from_wkt(asset["proj:wkt2"]).sub_crs_list[0].to_epsg() == 2991


def test_bound_crs_is_named_by_its_source() -> None:
    wkt = (
        CRS.from_epsg(2056)
        .to_wkt(WktVersion.WKT1_GDAL)
        .replace('DATUM["CH1903+",', 'DATUM["CH1903+",TOWGS84[674.374,15.056,405.346,0,0,0,0],')
    )
    assert CRS.from_wkt(wkt).is_bound
    assert identify_crs(strip_ids(wkt))[0] == "EPSG:2056"


# --- the real files: no regression ---------------------------------------------------------------


def test_real_files_keep_their_codes(expected: dict) -> None:
    # Ground truth is GDAL/PROJ's to_authority(); the deliberate differences are explained in
    # test_geometry.py (ESRI:102039 is EPSG:5070; a BoundCRS is named by its source CRS).
    differs = {"test_esri_wkt.tif": "EPSG:5070", "test1_4.las": "EPSG:2903"}
    differs["1_4_w_evlr.laz"] = "EPSG:2903"
    for name, truth in sorted(expected.items()):
        if not truth.get("crs_wkt2"):
            continue
        code, _ = identify_crs(truth["crs_wkt2"])
        assert code == differs.get(name, truth["crs_authority"]), name


def test_stripped_wkt_still_gets_the_area_of_use_check(tmp_path: Path) -> None:
    # LAEA Europe coordinates computed for a place in Oregon: far outside EPSG:3035's area. The
    # stripped WKT has no USAGE, and PROJ alone finds EPSG:3035 only at confidence 50.
    meta = describe(write_las(tmp_path / "far.las", stripped(3035), 2994))
    assert meta.crs_code == "EPSG:3035"
    assert any("outside the area of use" in w for w in meta.warnings), meta.warnings
    near = describe(write_las(tmp_path / "near.las", stripped(3035), 3035))
    assert not any("outside the area of use" in w for w in near.warnings), near.warnings


def test_compound_with_a_towgs84_hint_is_named_by_its_plain_compound() -> None:
    wkt = stripped(7415).replace(
        'DATUM["Amersfoort",',
        'DATUM["Amersfoort",TOWGS84[565.2369,50.0087,465.658,-0.406857,0.350733,-1.87035,4.0812],',
    )
    assert CRS.from_wkt(wkt).sub_crs_list[0].is_bound
    assert identify_crs(wkt)[0] == "EPSG:7415"
