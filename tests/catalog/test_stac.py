"""Tests for rendering manifest records as STAC JSON (items, collections, catalog, index)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from stacsync.catalog import index as index_module
from stacsync.catalog.collections import (
    CatalogInput,
    CollectionInput,
    render_catalog,
    render_collection,
)
from stacsync.catalog.footprint import ITEM_MAX_VERTICES
from stacsync.catalog.index import index_feature, write_index
from stacsync.catalog.items import AssetInput, ItemInput, render_item
from stacsync.catalog.links import (
    GEOJSON_TYPE,
    INDEX_PATH,
    JSON_TYPE,
    Links,
    catalog_path,
    collection_path,
    item_path,
    thumbnail_path,
)
from stacsync.catalog.model import dumps, feature_line
from stacsync.check.schemas import SchemaValidator
from stacsync.core.records import AssetMeta, Band, PointCloudInfo, RasterInfo

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOTIFF = "image/tiff; application=geotiff"
LAZ = "application/vnd.laszip"
COPC = "application/vnd.laszip+copc"
PUBLIC = "https://data.cyverse.org/dav-anon/iplant/home/u/stac/"
WHEN = "2023-05-25T12:00:00Z"
UTM10_WKT = 'PROJCRS["WGS 84 / UTM zone 10N",...]'
LOCAL_WKT = 'ENGCRS["local grid",EDATUM["site"],CS[Cartesian,2],AXIS["x",east],AXIS["y",north]]'


# --------------------------------------------------------------------------- record factories


def box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def raster(bands: tuple[Band, ...], res: float, resolution_m: float | None = None) -> RasterInfo:
    return RasterInfo(
        width=1000,
        height=800,
        bands=bands,
        transform=(res, 0.0, 500000.0, 0.0, -res, 4000080.0),
        resolution=(res, res),
        resolution_m=resolution_m,
        overviews=(2, 4, 8),
        tiled=True,
        block_shape=(512, 512),
        compression="deflate",
        is_cog=True,
    )


def pointcloud(copc: bool) -> PointCloudInfo:
    return PointCloudInfo(
        las_version="1.4",
        point_format=6,
        point_count=123456,
        point_record_length=30,
        scales=(0.01, 0.01, 0.01),
        offsets=(500000.0, 4000000.0, 0.0),
        mins=(500000.0, 4000000.0, 102.5),
        maxs=(500100.0, 4000080.0, 160.25),
        compressed=True,
        copc=copc,
        schemas=(
            {"name": "X", "size": 4, "type": "signed"},
            {"name": "Y", "size": 4, "type": "signed"},
            {"name": "Z", "size": 4, "type": "signed"},
            {"name": "Intensity", "size": 2, "type": "unsigned"},
        ),
        encoding="COPC" if copc else "LASzip",
    )


UTM_NATIVE = (500000.0, 4000000.0, 500100.0, 4000080.0)


def cog_ortho() -> AssetMeta:
    """RGB uint8 COG orthomosaic in EPSG:32610."""
    rgb = tuple(Band("uint8", color_interp=c, common_name=c) for c in ("red", "green", "blue"))
    return AssetMeta(
        kind="raster",
        media_type=COG,
        crs_code="EPSG:32610",
        crs_wkt2=UTM10_WKT,
        bbox_native=UTM_NATIVE,
        bbox_4326=(-123.0, 36.1, -122.9989, 36.1007),
        geometry_4326=box(-123.0, 36.1, -122.9989, 36.1007),
        datetime="2023-05-25T11:00:00Z",
        raster=raster(rgb, 0.1, resolution_m=0.1),
    )


def dsm() -> AssetMeta:
    """Float32 DSM with nodata and a unit, plain GeoTIFF (not a COG), coarser than the ortho."""
    band = Band("float32", nodata=-9999.0, unit="metre", color_interp="gray")
    return AssetMeta(
        kind="raster",
        media_type=GEOTIFF,
        crs_code="EPSG:32610",
        crs_wkt2=UTM10_WKT,
        bbox_native=UTM_NATIVE,
        bbox_4326=(-123.0005, 36.0995, -122.999, 36.101),
        geometry_4326=box(-123.0005, 36.0995, -122.999, 36.101),
        raster=dataclasses.replace(raster((band,), 0.25, resolution_m=0.25), is_cog=False),
    )


def laz() -> AssetMeta:
    """LAZ point cloud with an EPSG code."""
    return AssetMeta(
        kind="pointcloud",
        media_type=LAZ,
        crs_code="EPSG:32610",
        crs_wkt2=UTM10_WKT,
        bbox_native=UTM_NATIVE,
        bbox_4326=(-123.0, 36.1, -122.9988, 36.1008),
        geometry_4326=box(-123.0, 36.1, -122.9988, 36.1008),
        pointcloud=pointcloud(copc=False),
    )


def copc() -> AssetMeta:
    """COPC point cloud."""
    return dataclasses.replace(laz(), media_type=COPC, pointcloud=pointcloud(copc=True))


def wkt_only() -> AssetMeta:
    """Raster whose CRS has no authority code, with scale/offset and no metric resolution."""
    band = Band("int16", nodata=0.0, scale=0.01, offset=100.0, description="height")
    return AssetMeta(
        kind="raster",
        media_type=GEOTIFF,
        crs_code=None,
        crs_wkt2=LOCAL_WKT,
        bbox_native=(0.0, 0.0, 100.0, 80.0),
        bbox_4326=(10.0, 45.0, 10.001, 45.001),
        geometry_4326=box(10.0, 45.0, 10.001, 45.001),
        raster=raster((band,), 0.1),
    )


def antimeridian() -> AssetMeta:
    """Raster across the antimeridian: a split footprint, bbox west > east."""
    halves = {
        "type": "MultiPolygon",
        "coordinates": [
            box(179.8, -17.0, 180.0, -16.8)["coordinates"],
            box(-180.0, -17.0, -179.9, -16.8)["coordinates"],
        ],
    }
    return AssetMeta(
        kind="raster",
        media_type=COG,
        crs_code="EPSG:3460",
        crs_wkt2='PROJCRS["Fiji 1986 / Fiji Map Grid",...]',
        bbox_native=(1800000.0, 3900000.0, 1830000.0, 3922000.0),
        bbox_4326=(179.8, -17.0, -179.9, -16.8),
        geometry_4326=halves,
        raster=raster((Band("uint8"),), 30.0, resolution_m=30.0),
    )


METAS = {
    "ortho": cog_ortho,
    "dsm": dsm,
    "points": laz,
    "copc": copc,
    "local": wkt_only,
    "dateline": antimeridian,
}


def asset(key: str, meta: AssetMeta | None = None, **kw: Any) -> AssetInput:
    fields: dict[str, Any] = {
        "key": key,
        "href": f"{PUBLIC}data/{key}.bin",
        "title": None,
        "size": 1000,
        "checksum": "1220" + "ab" * 32,
        "meta": meta or METAS[key](),
    }
    fields.update(kw)
    return AssetInput(**fields)


def item_input(*assets: AssetInput, **kw: Any) -> ItemInput:
    fields: dict[str, Any] = {
        "collection_id": "missions",
        "item_id": "000421",
        "datetime": WHEN,
        "properties": {"platform": "DJI Phantom 4 RTK", "license": "CC-BY-4.0"},
        "assets": assets,
    }
    fields.update(kw)
    return ItemInput(**fields)


def collection_input(**kw: Any) -> CollectionInput:
    fields: dict[str, Any] = {
        "id": "missions",
        "title": "OFO missions",
        "description": "Drone missions of the Open Forest Observatory",
        "license": "CC-BY-4.0",
        "keywords": ("drone", "forest"),
        "providers": ({"name": "Open Forest Observatory", "roles": ["producer", "licensor"]},),
        "bbox": (-123.0005, 36.0995, -122.9988, 36.101),
        "start": "2023-05-25T12:00:00Z",
        "end": "2023-06-01T12:00:00Z",
        "item_ids": ("000422", "000421"),
    }
    fields.update(kw)
    return CollectionInput(**fields)


@pytest.fixture(scope="module")
def validator(schema_root: Path) -> SchemaValidator:
    return SchemaValidator(schema_root)


@pytest.fixture(params=[None, PUBLIC], ids=["relative", "public"])
def links(request: pytest.FixtureRequest) -> Links:
    return Links(request.param)


def ext(item: dict) -> set[str]:
    return {url.split("/")[3] for url in item["stac_extensions"]}


# --------------------------------------------------------------------------- items


@pytest.mark.parametrize("key", sorted(METAS))
def test_single_asset_item_validates(key: str, links: Links, validator: SchemaValidator) -> None:
    item = render_item(item_input(asset(key)), links)
    assert validator.errors(item) == []
    assert item["stac_extensions"] == sorted(item["stac_extensions"])
    rendered = item["assets"][key]
    assert rendered["type"] == METAS[key]().media_type
    # An 8-bit RGB(A) image is also something to look at as it is.
    rgb = key == "ortho"
    assert rendered["roles"] == (["data", "visual"] if rgb else ["data"])
    assert rendered["file:size"] == 1000


def test_media_types_pass_through(links: Links) -> None:
    item = render_item(item_input(*(asset(k) for k in METAS)), links)
    types = {k: a["type"] for k, a in item["assets"].items()}
    assert types == {
        "ortho": COG,
        "dsm": GEOTIFF,
        "points": LAZ,
        "copc": COPC,
        "local": GEOTIFF,
        "dateline": COG,
    }


def test_ortho_asset_fields() -> None:
    item = render_item(item_input(asset("ortho")), Links(None))
    ortho = item["assets"]["ortho"]
    assert ortho["title"] == "Ortho"
    assert ortho["proj:code"] == "EPSG:32610"
    assert "proj:wkt2" not in ortho
    assert ortho["proj:shape"] == [800, 1000]
    assert ortho["proj:transform"] == [0.1, 0.0, 500000.0, 0.0, -0.1, 4000080.0]
    assert ortho["proj:bbox"] == list(UTM_NATIVE)
    assert ortho["raster:spatial_resolution"] == 0.1
    assert [b["eo:common_name"] for b in ortho["bands"]] == ["red", "green", "blue"]
    assert {b["data_type"] for b in ortho["bands"]} == {"uint8"}
    assert all("nodata" not in b and "raster:scale" not in b for b in ortho["bands"])
    assert ext(item) == {"projection", "raster", "eo", "file"}
    for field in ("proj:code", "proj:shape", "proj:transform", "proj:bbox"):
        assert field not in item["properties"]  # projection lives on the asset


def test_dsm_band_has_nodata_and_unit() -> None:
    item = render_item(item_input(asset("dsm")), Links(None))
    (band,) = item["assets"]["dsm"]["bands"]
    assert band == {"name": "b1", "data_type": "float32", "nodata": -9999.0, "unit": "metre"}
    assert "eo" not in ext(item)


def test_wkt_only_crs_and_scale_offset(validator: SchemaValidator) -> None:
    item = render_item(item_input(asset("local")), Links(None))
    local = item["assets"]["local"]
    assert local["proj:code"] is None
    assert local["proj:wkt2"] == LOCAL_WKT
    assert "raster:spatial_resolution" not in local
    (band,) = local["bands"]
    assert band["nodata"] == 0 and isinstance(band["nodata"], int)
    assert band["raster:scale"] == 0.01 and band["raster:offset"] == 100.0
    assert band["description"] == "height"
    assert "gsd" not in item["properties"]
    assert validator.errors(item) == []


def test_raster_extension_only_when_a_raster_field_is_written(
    validator: SchemaValidator,
) -> None:
    meta = dsm()
    meta = dataclasses.replace(meta, raster=dataclasses.replace(meta.raster, resolution_m=None))
    item = render_item(item_input(asset("dsm", meta)), Links(None))
    assert "raster" not in ext(item)  # the raster schema demands at least one raster: field
    assert item["assets"]["dsm"]["bands"][0]["data_type"] == "float32"
    assert validator.errors(item) == []


@pytest.mark.parametrize(
    ("nodata", "data_type", "expected"),
    [
        (float("nan"), "float32", "nan"),
        ("NaN", "float32", "nan"),
        (float("-inf"), "float64", "-inf"),
    ],
)
def test_special_nodata(nodata: float | str, data_type: str, expected: str) -> None:
    meta = dsm()
    band = Band(data_type, nodata=nodata)
    meta = dataclasses.replace(meta, raster=dataclasses.replace(meta.raster, bands=(band,)))
    item = render_item(item_input(asset("dsm", meta)), Links(None))
    assert item["assets"]["dsm"]["bands"][0]["nodata"] == expected
    dumps(item)  # NaN never reaches the JSON


def test_nonstandard_common_name_is_left_out(validator: SchemaValidator) -> None:
    meta = dsm()
    band = Band("float32", common_name="alpha")
    meta = dataclasses.replace(meta, raster=dataclasses.replace(meta.raster, bands=(band,)))
    item = render_item(item_input(asset("dsm", meta)), Links(None))
    assert "eo:common_name" not in item["assets"]["dsm"]["bands"][0]
    assert "eo" not in ext(item)
    assert validator.errors(item) == []


@pytest.mark.parametrize("key", ["points", "copc"])
def test_pointcloud_asset_fields(key: str) -> None:
    item = render_item(item_input(asset(key), pc_type="eopc"), Links(None))
    pc = item["assets"][key]
    assert pc["pc:count"] == 123456
    assert pc["pc:type"] == "eopc"
    assert [s["name"] for s in pc["pc:schemas"]] == ["X", "Y", "Z", "Intensity"]
    assert "pc:encoding" not in pc  # removed in pointcloud v2.0.0; the media type says it
    assert pc["proj:bbox"] == [500000.0, 4000000.0, 102.5, 500100.0, 4000080.0, 160.25]
    assert "proj:shape" not in pc and "bands" not in pc
    assert ext(item) == {"pointcloud", "projection", "file"}
    assert "gsd" not in item["properties"]


def test_multi_asset_item(links: Links, validator: SchemaValidator) -> None:
    keys = ("ortho", "dsm", "points", "copc")
    item = render_item(item_input(*(asset(k) for k in reversed(keys))), links)
    assert validator.errors(item) == []
    assert list(item["assets"]) == sorted(keys)
    assert item["properties"]["gsd"] == 0.1  # the finest raster wins
    assert item["bbox"] == [-123.0005, 36.0995, -122.9988, 36.101]
    assert item["geometry"]["type"] == "Polygon"
    assert ext(item) == {"projection", "raster", "eo", "pointcloud", "file"}


def test_geometry_is_the_union_and_the_bbox_holds_it() -> None:
    from shapely.geometry import shape

    item = render_item(item_input(asset("ortho"), asset("dsm"), asset("points")), Links(None))
    geom = shape(item["geometry"])
    assert geom.is_valid
    for key in ("ortho", "dsm", "points"):
        assert geom.covers(shape(METAS[key]().geometry_4326))
    assert list(geom.bounds) == item["bbox"]
    ring = item["geometry"]["coordinates"][0]
    assert _signed_area(ring) > 0  # RFC 7946: exterior rings counter-clockwise


def _signed_area(ring: list[list[float]]) -> float:
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairwise(ring)) / 2


def test_antimeridian_item(validator: SchemaValidator) -> None:
    item = render_item(item_input(asset("dateline")), Links(None))
    assert item["bbox"] == [179.8, -17.0, -179.9, -16.8]
    assert item["geometry"]["type"] == "MultiPolygon"
    lons = [x for poly in item["geometry"]["coordinates"] for x, _ in poly[0]]
    assert max(lons) == 180.0 and min(lons) == -180.0
    assert validator.errors(item) == []


def test_antimeridian_union_joins_across_180() -> None:
    east = dataclasses.replace(
        antimeridian(),
        bbox_4326=(179.5, -17.5, 180.0, -16.9),
        geometry_4326=box(179.5, -17.5, 180.0, -16.9),
    )
    item = render_item(item_input(asset("dateline"), asset("east", east)), Links(None))
    assert item["bbox"] == [179.5, -17.5, -179.9, -16.8]
    assert item["geometry"]["type"] == "MultiPolygon"
    assert len(item["geometry"]["coordinates"]) == 2  # one part each side of 180, no more


def test_footprints_on_both_sides_take_the_short_way() -> None:
    west = dataclasses.replace(
        wkt_only(),
        bbox_4326=(-179.9, 1.0, -179.8, 2.0),
        geometry_4326=box(-179.9, 1.0, -179.8, 2.0),
    )
    east = dataclasses.replace(
        wkt_only(), bbox_4326=(179.7, 1.0, 179.8, 2.0), geometry_4326=box(179.7, 1.0, 179.8, 2.0)
    )
    item = render_item(item_input(asset("w", west), asset("e", east)), Links(None))
    assert item["bbox"] == [179.7, 1.0, -179.8, 2.0]


def test_degenerate_footprint_still_renders(validator: SchemaValidator) -> None:
    one_point = dataclasses.replace(
        laz(),
        bbox_4326=(-93.35, 41.57, -93.35, 41.57),
        geometry_4326=box(-93.35, 41.57, -93.35, 41.57),
    )
    item = render_item(item_input(asset("points", one_point)), Links(None))
    assert item["geometry"] == {"type": "Point", "coordinates": [-93.35, 41.57]}
    assert validator.errors(item) == []


def test_coordinates_are_rounded() -> None:
    meta = dataclasses.replace(
        wkt_only(),
        bbox_4326=(10.0000000001234, 45.0, 10.001, 45.001),
        geometry_4326=box(10.0000000001234, 45.0, 10.001, 45.001),
    )
    item = render_item(item_input(asset("local", meta)), Links(None))
    assert item["bbox"][0] == 10.0
    assert [10.0, 45.0] in item["geometry"]["coordinates"][0]


def test_properties() -> None:
    props = {
        "platform": "DJI",
        "license": "CC-BY-SA-4.0",
        "providers": ({"url": "https://openforestobservatory.org", "name": "OFO"},),
        "datetime": "1999-01-01T00:00:00Z",
        "gsd": 0.05,
        "mission": {"b": 1, "a": [1, 2]},
    }
    item = render_item(item_input(asset("dsm"), properties=props), Links(None))
    p = item["properties"]
    assert list(p) == ["datetime", "gsd", "license", "mission", "platform", "providers"]
    assert p["datetime"] == WHEN  # the item's own datetime wins
    assert p["gsd"] == 0.05  # a configured gsd wins over the derived one
    assert p["license"] == "CC-BY-SA-4.0"
    assert p["providers"] == [{"name": "OFO", "url": "https://openforestobservatory.org"}]
    assert list(p["mission"]) == ["a", "b"]
    assert "created" not in p and "updated" not in p


def test_scientific_extension_only_when_configured(validator: SchemaValidator) -> None:
    plain = render_item(item_input(asset("dsm")), Links(None))
    assert "scientific" not in ext(plain)
    sci = {"sci:doi": "10.1002/ecs2.3649", "sci:citation": "Gillan et al. 2021"}
    cited = render_item(item_input(asset("dsm"), properties=sci), Links(None))
    assert "scientific" in ext(cited)
    assert cited["properties"]["sci:doi"] == "10.1002/ecs2.3649"
    assert validator.errors(cited) == []


def test_checksum(validator: SchemaValidator) -> None:
    item = render_item(
        item_input(asset("dsm", checksum="1220" + "AB" * 32), asset("ortho", checksum=None)),
        Links(None),
    )
    assert item["assets"]["dsm"]["file:checksum"] == "1220" + "ab" * 32
    assert "file:checksum" not in item["assets"]["ortho"]
    assert validator.errors(item) == []
    with pytest.raises(ValueError, match="checksum"):
        render_item(item_input(asset("dsm", checksum="sha2:abc")), Links(None))


def test_asset_titles() -> None:
    item = render_item(
        item_input(asset("dsm-ptcloud", dsm()), asset("ortho", title="Orthomosaic (RGB)")),
        Links(None),
    )
    assert item["assets"]["dsm-ptcloud"]["title"] == "Dsm ptcloud"
    assert item["assets"]["ortho"]["title"] == "Orthomosaic (RGB)"


def test_item_needs_unique_assets() -> None:
    with pytest.raises(ValueError, match="no assets"):
        render_item(item_input(), Links(None))
    with pytest.raises(ValueError, match="duplicate"):
        render_item(item_input(asset("dsm"), asset("dsm")), Links(None))


def test_item_links_relative() -> None:
    item = render_item(item_input(asset("dsm")), Links(None))
    assert item["collection"] == "missions"
    assert [(link["rel"], link["href"]) for link in item["links"]] == [
        ("root", "../../catalog.json"),
        ("parent", "../collection.json"),
        ("collection", "../collection.json"),
    ]


def test_item_links_public() -> None:
    item = render_item(item_input(asset("dsm")), Links(PUBLIC))
    base = PUBLIC.rstrip("/")
    assert [(link["rel"], link["href"]) for link in item["links"]] == [
        ("root", f"{base}/catalog.json"),
        ("parent", f"{base}/missions/collection.json"),
        ("collection", f"{base}/missions/collection.json"),
        ("self", f"{base}/missions/000421/000421.json"),
    ]


def test_render_is_deterministic(links: Links) -> None:
    keys = ("ortho", "dsm", "points", "dateline")
    first = dumps(render_item(item_input(*(asset(k) for k in keys)), links))
    props = dict(reversed(list(item_input().properties.items())))
    again = dumps(
        render_item(item_input(*(asset(k) for k in reversed(keys)), properties=props), links)
    )
    assert first == again
    assert first == dumps(json.loads(first))  # a stored copy re-serialises identically


def test_pystac_reads_the_item() -> None:
    import pystac
    from pystac.extensions.projection import ProjectionExtension

    item = render_item(item_input(asset("ortho"), asset("points")), Links(PUBLIC))
    parsed = pystac.Item.from_dict(item)
    assert parsed.id == "000421"
    assert parsed.assets["ortho"].media_type == COG
    assert ProjectionExtension.ext(parsed.assets["ortho"]).code == "EPSG:32610"
    assert parsed.get_self_href() == f"{PUBLIC}missions/000421/000421.json"


def test_pystac_writes_back_what_it_reads(links: Links) -> None:
    import pystac

    item = render_item(
        item_input(*(asset(k) for k in METAS), thumbnail=True, properties={"sci:doi": "10.1/x"}),
        links,
    )
    stored = json.loads(dumps(item))
    again = pystac.Item.from_dict(stored).to_dict(transform_hrefs=False)
    assert again == stored and list(again) == list(stored)  # key order too


def test_hrefs_are_written_exactly_as_given() -> None:
    # A backslash is a legal character of a POSIX file name; pystac's constructors would
    # turn it into a folder separator.
    href = "/data/plot\\7 (copy).tif"
    item = render_item(item_input(asset("dsm", href=href)), Links(None))
    assert item["assets"]["dsm"]["href"] == href


def test_a_datetime_that_is_not_iso_is_refused() -> None:
    with pytest.raises(ValueError, match="not ISO 8601"):
        render_item(item_input(asset("dsm"), datetime="25/05/2023"), Links(None))


def test_thumbnail_asset(links: Links, validator: SchemaValidator) -> None:
    item = render_item(item_input(asset("ortho"), asset("points"), thumbnail=True), links)
    assert validator.errors(item) == []
    assert list(item["assets"]) == ["ortho", "points", "thumbnail"]  # sorted with the others
    thumb = item["assets"]["thumbnail"]
    href = "./000421.png" if not links.is_public else f"{PUBLIC}missions/000421/000421.png"
    assert thumb == {
        "href": href,
        "type": "image/png",
        "title": "Thumbnail",
        "roles": ["thumbnail"],
    }
    assert thumbnail_path("missions", "000421") == "missions/000421/000421.png"
    assert "thumbnail" not in render_item(item_input(asset("ortho")), links)["assets"]


def test_a_data_asset_keyed_thumbnail_keeps_its_key() -> None:
    item = render_item(item_input(asset("thumbnail", cog_ortho()), thumbnail=True), Links(None))
    assert item["assets"]["thumbnail"]["roles"] == ["data", "visual"]  # a data file, RGB


def test_item_title_from_the_collection_template() -> None:
    from stacsync.catalog.titles import fill_item_title
    from stacsync.config.collection_keys import DEFAULT_ITEM_TITLE

    title = fill_item_title(DEFAULT_ITEM_TITLE, "000421", "2019-06-04T11:59:40Z", "OFO", {})
    assert title == "000421 (2019-06-04)"
    custom = "Mission {id}, {properties[sensor]} {date:%B %Y} ({collection})"
    title = fill_item_title(custom, "7", "2019-06-04T11:59:40Z", "OFO", {"sensor": "P4"})
    assert title == "Mission 7, P4 June 2019 (OFO)"
    assert fill_item_title(custom, "7", "2019-06-04T11:59:40Z", "OFO", {}) == (
        "Mission 7, June 2019 (OFO)"  # a missing property leaves no gap
    )
    item = render_item(item_input(asset("ortho"), title=title), Links(None))
    assert item["properties"]["title"] == title


def _jagged(west: float, south: float, teeth: int, phase: float) -> dict[str, Any]:
    """A polygon with a saw-tooth north edge: `teeth` × 2 + 3 positions."""
    step = 0.001 / teeth
    top = [[west + i * step, south + 0.001 + (0.0001 if (i + phase) % 2 else 0.0)]
           for i in range(2 * teeth + 1)]  # fmt: skip
    ring = [[west, south], [west + 0.001 * 2, south], *reversed(top), [west, south]]
    ring[1][0] = top[-1][0]
    return {"type": "Polygon", "coordinates": [ring]}


def test_union_of_detailed_footprints_stays_bounded(validator: SchemaValidator) -> None:
    from shapely.geometry import shape

    metas = []
    for phase in (0, 1):  # interleaved teeth: the union has twice the vertices of either
        geometry = _jagged(-123.0, 36.1, 200, phase)
        bounds = shape(geometry).bounds
        metas.append(dataclasses.replace(dsm(), bbox_4326=bounds, geometry_4326=geometry))
    item = render_item(item_input(asset("a", metas[0]), asset("b", metas[1])), Links(None))
    geom = shape(item["geometry"])
    union = shape(metas[0].geometry_4326).union(shape(metas[1].geometry_4326))
    assert len(union.exterior.coords) > ITEM_MAX_VERTICES  # so the bound is at work
    assert len(geom.exterior.coords) <= ITEM_MAX_VERTICES
    for meta in metas:  # still covers every asset, and the bbox holds it
        assert geom.buffer(1e-9).covers(shape(meta.geometry_4326))
    west, south, east, north = item["bbox"]
    assert west <= geom.bounds[0] and south <= geom.bounds[1]
    assert east >= geom.bounds[2] and north >= geom.bounds[3]
    assert validator.errors(item) == []


# --------------------------------------------------------------------------- collection, catalog


def test_collection(links: Links, validator: SchemaValidator) -> None:
    coll = render_collection(collection_input(), links)
    assert validator.errors(coll) == []
    assert coll["extent"]["spatial"]["bbox"] == [[-123.0005, 36.0995, -122.9988, 36.101]]
    assert coll["extent"]["temporal"]["interval"] == [[WHEN, "2023-06-01T12:00:00Z"]]
    assert coll["keywords"] == ["drone", "forest"]
    assert coll["providers"][0]["name"] == "Open Forest Observatory"
    assert coll["stac_extensions"] == []
    item_links = [link["href"] for link in coll["links"] if link["rel"] == "item"]
    if links.is_public:
        base = PUBLIC.rstrip("/")
        assert item_links == [f"{base}/missions/{i}/{i}.json" for i in ("000421", "000422")]
        assert coll["links"][-1] == {
            "rel": "self",
            "href": f"{base}/missions/collection.json",
            "type": "application/json",
            "title": "OFO missions",
        }
    else:
        assert item_links == ["./000421/000421.json", "./000422/000422.json"]
        assert coll["links"][0]["href"] == "../catalog.json"
        assert all(link["rel"] != "self" for link in coll["links"])


def test_empty_collection(validator: SchemaValidator) -> None:
    coll = render_collection(
        collection_input(
            bbox=None, start=None, end=None, item_ids=(), keywords=(), providers=(), title=None
        ),
        Links(None),
    )
    assert coll["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]]
    assert coll["extent"]["temporal"]["interval"] == [[None, None]]
    assert "keywords" not in coll and "providers" not in coll and "title" not in coll
    assert validator.errors(coll) == []


def test_collection_extra_fields(validator: SchemaValidator) -> None:
    extra = {
        "sci:doi": "10.1002/ecs2.3649",
        "summaries": {"platform": ["DJI Phantom 4 RTK"]},
    }
    coll = render_collection(collection_input(extra_fields=extra), Links(None))
    assert coll["sci:doi"] == "10.1002/ecs2.3649"
    assert coll["summaries"] == {"platform": ["DJI Phantom 4 RTK"]}
    assert "scientific" in ext(coll)
    assert validator.errors(coll) == []
    with pytest.raises(ValueError, match="license"):
        render_collection(collection_input(extra_fields={"license": "x"}), Links(None))


def test_collection_antimeridian_bbox(validator: SchemaValidator) -> None:
    coll = render_collection(collection_input(bbox=(179.8, -17.0, -179.9, -16.8)), Links(None))
    assert coll["extent"]["spatial"]["bbox"] == [[179.8, -17.0, -179.9, -16.8]]
    assert validator.errors(coll) == []


def test_catalog(links: Links, validator: SchemaValidator) -> None:
    cat = render_catalog(
        CatalogInput("ofo", "Open Forest Observatory", "All OFO products", ("plots", "missions")),
        links,
    )
    assert validator.errors(cat) == []
    children = [link["href"] for link in cat["links"] if link["rel"] == "child"]
    if links.is_public:
        base = PUBLIC.rstrip("/")
        assert children == [f"{base}/missions/collection.json", f"{base}/plots/collection.json"]
        assert cat["links"][0]["href"] == f"{base}/catalog.json"
        assert cat["links"][-1]["rel"] == "self"
    else:
        assert children == ["./missions/collection.json", "./plots/collection.json"]
        assert cat["links"][0] == {
            "rel": "root",
            "href": "./catalog.json",
            "type": "application/json",
            "title": "Open Forest Observatory",
        }
        assert all(link["rel"] != "self" for link in cat["links"])
    # Every link is titled (stac-check's best practice): the collections by their ids here.
    titles = [link["title"] for link in cat["links"]]
    assert titles[1:3] == ["missions", "plots"]


def test_collection_and_catalog_are_deterministic() -> None:
    c1 = collection_input(extra_fields={"b": 1, "a": {"y": 1, "x": 2}})
    c2 = collection_input(
        extra_fields={"a": {"x": 2, "y": 1}, "b": 1}, item_ids=("000421", "000422")
    )
    assert dumps(render_collection(c1, Links(None))) == dumps(render_collection(c2, Links(None)))
    cat = CatalogInput("ofo", None, "d", ("b", "a"))
    assert dumps(render_catalog(cat, Links(None))) == dumps(render_catalog(cat, Links(None)))


# --------------------------------------------------------------------------- paths and links


def test_paths() -> None:
    assert catalog_path() == "catalog.json"
    assert collection_path("missions") == "missions/collection.json"
    assert item_path("missions", "000421") == "missions/000421/000421.json"
    assert INDEX_PATH == "index.geojson"


@pytest.mark.parametrize(
    "bad", ["..", ".", "a/b", "../x", "", ".hidden", "a b", "x\\y", "catalog.json", "index.geojson"]
)
def test_unsafe_collection_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        collection_path(bad)
    with pytest.raises(ValueError):
        item_path(bad, "ok")


@pytest.mark.parametrize("bad", ["..", "a/b", "/abs", "", "collection.json"])
def test_unsafe_item_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        item_path("ok", bad)
    with pytest.raises(ValueError):
        render_item(item_input(asset("dsm"), item_id=bad), Links(None))


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ("catalog.json", "catalog.json", "./catalog.json"),
        ("catalog.json", "c/collection.json", "./c/collection.json"),
        ("c/collection.json", "catalog.json", "../catalog.json"),
        ("c/collection.json", "c/i/i.json", "./i/i.json"),
        ("c/i/i.json", "catalog.json", "../../catalog.json"),
        ("c/i/i.json", "c/collection.json", "../collection.json"),
        ("index.geojson", "c/i/i.json", "./c/i/i.json"),
    ],
)
def test_relative_hrefs(src: str, dst: str, expected: str) -> None:
    assert Links(None).href(src, dst) == expected
    assert Links(PUBLIC).href(src, dst) == PUBLIC.rstrip("/") + "/" + dst
    assert Links("https://x.org/stac").href(src, dst) == "https://x.org/stac/" + dst


def test_self_links_only_when_public() -> None:
    assert Links(None).self_href("catalog.json") is None
    assert not Links("").is_public
    assert Links(PUBLIC).self_href("catalog.json") == PUBLIC + "catalog.json"


# --------------------------------------------------------------------------- dumps, index


def test_dumps() -> None:
    obj = {"b": "café", "a": [1, 2]}
    out = dumps(obj)
    assert out.endswith(b"}\n")
    assert "café".encode() in out
    assert out == dumps(dict(obj))
    assert out.splitlines()[1] == b'  "b": "caf\xc3\xa9",'  # indent 2, key order kept
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


@pytest.mark.parametrize("public", [None, PUBLIC], ids=["relative", "public"])
def test_write_index_streams(
    public: str | None, validator: SchemaValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "CHUNK", 1)  # a write after every line
    links = Links(public)
    out = io.BytesIO()
    produced: list[str] = []

    def features() -> Iterator[dict]:
        for n in range(5):
            if produced:
                # The previous feature is already written when the next one is asked for.
                assert produced[-1].encode() in out.getvalue()
            iid = f"item-{n}"
            item = render_item(item_input(asset("dsm"), item_id=iid), links)
            stored = json.loads(dumps(item))  # the caller streams stored JSON from SQLite
            produced.append(iid)
            href = links.href(INDEX_PATH, item_path("missions", iid))
            yield feature_line(index_feature(stored, href))

    write_index(features(), out)
    fc = json.loads(out.getvalue())
    assert fc["type"] == "FeatureCollection"
    assert [f["id"] for f in fc["features"]] == produced
    for feature in fc["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Polygon"
        assert validator.errors(feature) == []  # each feature is still a valid STAC item
    first = fc["features"][0]
    prefix = "./" if public is None else PUBLIC
    assert first["links"] == [
        {
            "rel": "canonical",
            "href": f"{prefix}missions/item-0/item-0.json",
            "type": GEOJSON_TYPE,
        },
        {"rel": "collection", "href": f"{prefix}missions/collection.json", "type": JSON_TYPE},
    ]
    assert first["assets"]["dsm"]["href"].startswith(PUBLIC)


class _CountingWriter(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


def test_write_index_gathers_lines_into_writes_of_about_a_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [json.dumps({"type": "Feature", "id": f"i{n}", "pad": "x" * 90}) for n in range(50)]
    one_by_one = _CountingWriter()
    monkeypatch.setattr(index_module, "CHUNK", 1)
    write_index(iter(lines), one_by_one)
    gathered = _CountingWriter()
    monkeypatch.setattr(index_module, "CHUNK", 1000)
    write_index(iter(lines), gathered)
    assert gathered.getvalue() == one_by_one.getvalue()
    assert [f["id"] for f in json.loads(gathered.getvalue())["features"]] == [
        f"i{n}" for n in range(50)
    ]
    assert one_by_one.writes == 51  # each line, then the closing bracket
    # Each write but the last holds at least CHUNK characters of lines.
    assert 1 < gathered.writes <= sum(map(len, lines)) // 1000 + 1


def test_write_index_empty() -> None:
    out = io.BytesIO()
    write_index(iter(()), out)
    assert json.loads(out.getvalue()) == {"type": "FeatureCollection", "features": []}


def test_index_feature_refuses_a_foreign_href() -> None:
    item = render_item(item_input(asset("dsm")), Links(None))
    with pytest.raises(ValueError, match="does not end with"):
        index_feature(item, "./elsewhere/item.json")
