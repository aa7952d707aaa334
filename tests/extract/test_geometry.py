"""Tests for stacsync.extract.geometry: CRS identification, EPSG:4326 footprints, linear units.

Real CRS definitions come from ../shared/testdata/expected.json; footprints are also checked
against pyproj's own transform_bounds.
"""

from __future__ import annotations

import math

import pytest
from pyproj import CRS, Transformer
from shapely.geometry import Point, shape

from stacsync.core.errors import ExtractError
from stacsync.extract.crs import identify_crs, metres_per_unit
from stacsync.extract.geometry import footprint_4326, outline_4326


def _wkt(expected: dict, name: str) -> str:
    return expected[name]["crs_wkt2"]


def _box(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y1), (x1, y1), (x1, y0), (x0, y0)]  # like raster corners: TL, TR, BR, BL


# --- identify_crs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("RGB.byte.tif", "EPSG:32618"),
        ("elev.tif", "EPSG:3857"),
        ("world.rgb.tif", "EPSG:4326"),
        ("autzen.las", "EPSG:2994"),
        # Not EPSG and no EPSG equivalent: keep the other authority's code.
        ("float_raster_with_nodata.tif", "IGNF:ETRS89LAEA"),
        # ESRI:102039 is the same Albers as EPSG:5070 (PROJ: equivalent, confidence 70):
        # EPSG preferred on purpose, expected.json (rasterio's to_authority) says ESRI:102039.
        ("test_esri_wkt.tif", "EPSG:5070"),
        # Equivalent to EPSG:6880 only under another name (confidence 70).
        ("file_with_both_wkt_and_geotiff_vlrs.las", "EPSG:6880"),
        # Compound CRS without a code of its own: none (proj:wkt2 carries it).
        ("autzen-bmx-2010.las", None),
        # BoundCRS (TOWGS84): its source CRS's code.
        ("test1_4.las", "EPSG:2903"),
        # Only similar names (confidence 50 / 25): no code rather than a wrong one.
        ("rgb1.tif", None),
        ("image_nodata.tif", None),
        ("dataset_mars.tif", None),
    ],
)
def test_identify_crs_real_wkts(expected, name, code):
    got_code, wkt2 = identify_crs(_wkt(expected, name))
    assert got_code == code
    assert wkt2.startswith(("PROJCRS", "GEOGCRS", "COMPOUNDCRS", "BOUNDCRS"))
    # The WKT2 describes the whole CRS as given (vertical part and TOWGS84 kept).
    assert CRS.from_wkt(wkt2).equals(CRS.from_wkt(_wkt(expected, name)))


@pytest.mark.parametrize(
    "text",
    [
        "EPSG:26910",
        CRS.from_epsg(26910).to_wkt("WKT1_GDAL"),
        CRS.from_epsg(26910).to_json(),
        CRS.from_epsg(26910).to_wkt("WKT2_2015"),
    ],
    ids=["epsg-string", "wkt1", "projjson", "wkt2-2015"],
)
def test_identify_crs_input_forms(text):
    code, wkt2 = identify_crs(text)
    assert code == "EPSG:26910"
    assert CRS.from_wkt(wkt2).equals(CRS.from_epsg(26910))


def test_identify_crs_esri_wkt():
    esri = CRS.from_user_input("ESRI:102039").to_wkt("WKT1_ESRI")
    assert identify_crs(esri)[0] == "EPSG:5070"


@pytest.mark.parametrize("text", ["", "   ", "not a crs", "EPSG:999999"])
def test_identify_crs_rejects_garbage(text):
    with pytest.raises(ExtractError) as info:
        identify_crs(text)
    assert "CRS" in str(info.value)


# --- footprint_4326 ----------------------------------------------------------------------------


def test_footprint_matches_pyproj_transform_bounds():
    ring = _box(373185.0, 8019284.9, 639014.9, 8286015.0)  # a 266 km UTM 21N scene
    bbox, geom = footprint_4326(ring, "EPSG:32621")
    ref = Transformer.from_crs("EPSG:32621", "EPSG:4326", always_xy=True).transform_bounds(
        373185.0, 8019284.9, 639014.9, 8286015.0, densify_pts=21
    )
    assert bbox == pytest.approx(ref, abs=1e-9)
    assert geom["type"] == "Polygon"
    poly = shape(geom)
    assert poly.is_valid and poly.exterior.is_ccw  # RFC 7946 winding
    assert poly.bounds == pytest.approx(bbox, abs=1e-9)


def test_footprint_small_area_keeps_only_corners():
    ring = _box(500000.0, 4000000.0, 500200.0, 4000150.0)
    _bbox, geom = footprint_4326(ring, "EPSG:32618")
    assert len(geom["coordinates"][0]) == 5  # densified points on straight edges are dropped
    t = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    corners = {tuple(round(v, 10) for v in t.transform(x, y)) for x, y in ring}
    assert {tuple(round(v, 10) for v in p) for p in geom["coordinates"][0]} == corners


def test_footprint_across_antimeridian_projected():
    # UTM 60N box from ~177.9°E to ~178.5°W.
    ring = _box(600000.0, 5600000.0, 900000.0, 5850000.0)
    bbox, geom = footprint_4326(ring, "EPSG:32660")
    west, south, east, north = bbox
    assert west > east and 170 < west < 180 and -180 < east < -170
    assert -90 <= south < north <= 90
    assert geom["type"] == "MultiPolygon"
    parts = [shape({"type": "Polygon", "coordinates": c}) for c in geom["coordinates"]]
    assert len(parts) == 2
    assert {round(p.bounds[2], 9) for p in parts} >= {180.0}
    assert {round(p.bounds[0], 9) for p in parts} >= {-180.0}
    for p in parts:
        assert p.is_valid and p.exterior.is_ccw
        assert p.bounds[0] >= -180 and p.bounds[2] <= 180


def test_footprint_across_antimeridian_geographic_box():
    bbox, geom = footprint_4326(_box(170.0, -10.0, 190.0, 10.0), "EPSG:4326")
    assert bbox == pytest.approx((170.0, -10.0, -170.0, 10.0))
    assert geom["type"] == "MultiPolygon"
    total = sum(shape({"type": "Polygon", "coordinates": c}).area for c in geom["coordinates"])
    assert total == pytest.approx(20.0 * 20.0)


def test_footprint_normalises_0_360_longitudes():
    bbox, geom = footprint_4326(_box(200.0, 0.0, 210.0, 10.0), "EPSG:4326")
    assert bbox == pytest.approx((-160.0, 0.0, -150.0, 10.0))
    assert geom["type"] == "Polygon"


def test_footprint_whole_world():
    bbox, geom = footprint_4326(_box(-180.0, -90.0, 180.0, 90.0), "EPSG:4326")
    assert bbox == (-180.0, -90.0, 180.0, 90.0)
    assert shape(geom).area == pytest.approx(360.0 * 180.0)


def test_footprint_around_north_pole():
    # NSIDC polar stereographic: a 2000 km square centred on the pole.
    bbox, geom = footprint_4326(_box(-1e6, -1e6, 1e6, 1e6), "EPSG:3413")
    assert bbox[0] == -180.0 and bbox[2] == 180.0 and bbox[3] == 90.0
    assert 75 < bbox[1] < 85
    footprint = shape(geom)
    assert footprint.is_valid
    assert footprint.contains(Point(0.0, 89.5)) and footprint.contains(Point(179.0, 89.5))


@pytest.mark.parametrize(
    ("ring", "crs", "words"),
    [
        (_box(0.0, 0.0, 10.0, 100.0), "EPSG:4326", "latitude"),
        (_box(0.0, 0.0, 10.0, math.inf), "EPSG:4326", "non-finite"),
        (_box(0.0, 0.0, 10.0, math.nan), "EPSG:4326", "non-finite"),
        (_box(0.0, 0.0, 600.0, 10.0), "EPSG:4326", "longitude"),
        (_box(0.0, 0.0, 1.0, 1.0), "EPSG:4978", "geocentric"),
        ([(0.0, 0.0), (1.0, 1.0)], "EPSG:4326", "at least 3"),
    ],
    ids=["lat-100", "inf", "nan", "lon-600", "geocentric", "two-points"],
)
def test_footprint_refuses_impossible_input(ring, crs, words):
    with pytest.raises(ExtractError) as info:
        footprint_4326(ring, crs)
    assert words in str(info.value)


def test_footprint_off_the_earth_disk_is_not_finite(expected):
    # goes.tif's grid corners lie in space beside the Earth's disk.
    corners = expected["goes.tif"]["extra"]["corners_native"]
    with pytest.raises(ExtractError, match="not finite in EPSG:4326"):
        footprint_4326([tuple(c) for c in corners], _wkt(expected, "goes.tif"))


def test_footprint_other_celestial_body(expected):
    corners = expected["dataset_mars.tif"]["extra"]["corners_native"]
    with pytest.raises(ExtractError, match="celestial body"):
        footprint_4326([tuple(c) for c in corners], _wkt(expected, "dataset_mars.tif"))


def test_footprint_engineering_crs_is_refused():
    local = (
        'ENGCRS["site grid",EDATUM["site"],CS[Cartesian,2],'
        'AXIS["x",east,LENGTHUNIT["metre",1]],AXIS["y",north,LENGTHUNIT["metre",1]]]'
    )
    with pytest.raises(ExtractError, match="no geodetic datum"):
        footprint_4326(_box(0.0, 0.0, 10.0, 10.0), local)


def test_footprint_compound_and_bound_crs(expected):
    # Compound: the horizontal part places it; Bound: its TOWGS84 is used.
    for name, box in [
        ("autzen-bmx-2010.las", (635577.0, 848882.0, 638982.0, 853538.0)),
        ("test1_4.las", (1440000.0, 1250000.0, 1441000.0, 1251000.0)),
    ]:
        bbox, geom = footprint_4326(_box(*box), _wkt(expected, name))
        assert -180 <= bbox[0] < bbox[2] <= 180
        assert geom["type"] == "Polygon"


def test_footprint_degenerate_ring_is_a_point():
    bbox, geom = footprint_4326([(500000.0, 4e6)] * 4, "EPSG:32618")
    assert geom["type"] == "Point"
    assert bbox[0] == bbox[2] and bbox[1] == bbox[3]


# --- metres_per_unit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crs", "factor"),
    [
        ("EPSG:32618", 1.0),
        ("EPSG:2994", 0.3048),  # NAD83(HARN) / Oregon GIC Lambert (ft): international foot
        ("EPSG:2903", 0.3048006096012192),  # US survey foot
        ("EPSG:4326", None),
        ("EPSG:4978", None),  # geocentric
        ("not a crs", None),
    ],
)
def test_metres_per_unit(crs, factor):
    got = metres_per_unit(crs)
    assert got == (pytest.approx(factor) if factor else None)


def test_metres_per_unit_compound_and_bound(expected):
    assert metres_per_unit(_wkt(expected, "autzen-bmx-2010.las")) == pytest.approx(1.0)
    assert metres_per_unit(_wkt(expected, "test1_4.las")) == pytest.approx(0.3048006096)


# --- outline_4326: traced outlines of one or more parts -------------------------------------


def test_outline_of_a_small_area_keeps_its_vertices():
    ring = [(500000.0, 4000000.0), (500200.0, 4000000.0), (500100.0, 4000150.0)]
    bbox, geom = outline_4326([ring], "EPSG:32618", tolerance=0.01)
    assert geom["type"] == "Polygon" and len(geom["coordinates"][0]) == 4
    assert shape(geom).bounds == pytest.approx(bbox, abs=1e-12)


def test_outline_follows_curved_edges_only_as_far_as_asked():
    ring = _box(373185.0, 8019284.9, 639014.9, 8286015.0)  # 266 km: its edges curve in lon/lat
    coarse = outline_4326([ring], "EPSG:32621", tolerance=1000.0)[1]
    fine = outline_4326([ring], "EPSG:32621", tolerance=1.0)[1]
    assert len(coarse["coordinates"][0]) < len(fine["coordinates"][0]) <= 4 * 64 + 1
    # Every point of the true edge is near the fine outline: sample one edge densely.
    t = Transformer.from_crs("EPSG:32621", "EPSG:4326", always_xy=True)
    xs = [373185.0 + k * (639014.9 - 373185.0) / 500 for k in range(501)]
    edge = [Point(t.transform(x, 8019284.9)) for x in xs]
    assert max(shape(fine).exterior.distance(p) for p in edge) < 1e-4  # ~10 m at most


def test_outline_parts_across_the_antimeridian_are_split():
    # Two blocks of a UTM 60N survey, one on each side of 180°.
    west = _box(680000.0, 5700000.0, 690000.0, 5710000.0)
    east = _box(720000.0, 5700000.0, 730000.0, 5710000.0)
    bbox, geom = outline_4326([west, east], "EPSG:32660", tolerance=1.0)
    assert bbox[0] > bbox[2]  # crosses
    assert geom["type"] == "MultiPolygon" and len(geom["coordinates"]) == 2
    parts = [shape({"type": "Polygon", "coordinates": c}) for c in geom["coordinates"]]
    assert all(p.is_valid and -180 <= p.bounds[0] <= p.bounds[2] <= 180 for p in parts)
    assert {p.bounds[0] > 0 for p in parts} == {True, False}


def test_outline_refuses_a_ring_around_the_pole():
    with pytest.raises(ExtractError, match="winds around a pole"):
        outline_4326([_box(-1e6, -1e6, 1e6, 1e6)], "EPSG:3413", tolerance=100.0)
