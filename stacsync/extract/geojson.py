"""GeoJSON dicts from shapely geometries and back, through coordinate arrays.

shapely's own `mapping` and `shape` walk every coordinate in Python; footprints have hundreds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, mapping, shape

__all__ = ["geojson", "shape_of"]


def geojson(geom: Any) -> dict[str, Any]:
    """GeoJSON dict with lists (not tuples) so it survives a JSON round trip unchanged.

    Coordinates are the same Python floats as `mapping` gives.
    """
    kind = geom.geom_type
    if geom.is_empty or geom.has_z or kind not in ("Polygon", "MultiPolygon"):
        gj = mapping(geom)
        return {"type": gj["type"], "coordinates": _lists(gj["coordinates"])}
    if kind == "Polygon":
        return {"type": kind, "coordinates": _rings(geom)}
    return {"type": kind, "coordinates": [_rings(part) for part in geom.geoms]}


def shape_of(geometry: dict[str, Any]) -> Any:
    """The shapely geometry of a GeoJSON dict: what `shape` gives, Polygons built from arrays."""
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon" and coords:
        return _polygon(coords)
    if kind == "MultiPolygon" and coords and all(coords):
        return shapely.multipolygons([_polygon(part) for part in coords])
    return shape(geometry)


def _polygon(rings: list[Any]) -> Polygon:
    shell, *holes = [shapely.linearrings(np.asarray(ring, dtype=float)) for ring in rings]
    return shapely.polygons(shell, holes or None)


def _rings(polygon: Polygon) -> list[list[list[float]]]:
    if polygon.is_empty:
        return []
    return [shapely.get_coordinates(r).tolist() for r in (polygon.exterior, *polygon.interiors)]


def _lists(value: Any) -> Any:
    if isinstance(value, tuple | list):
        if value and isinstance(value[0], int | float):
            return [float(v) for v in value]
        return [_lists(v) for v in value]
    return value
