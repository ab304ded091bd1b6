"""Pure polygon rules for territories and zones: parse, validate, check overlaps, assign buildings.

No Flask, no database: plain shapely/pyproj/numpy, tested without an app. Geometries are
WGS84 lon/lat (x = lon, y = lat, as in GeoJSON). The 1 m tolerances are measured in metres
in a local projection (the UTM zone of the polygon being checked), never in degrees.

Errors are :class:`GeometryError` with an English msgid template and its parameters, so
the caller can translate the template and then fill it in.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.ops import polylabel

#: refuse polygons bigger than this (a hand-drawn zone has tens of vertices)
MAX_VERTICES = 10_000
#: overlaps and "sticking out" up to this many metres are hand-drawing noise, not conflicts
TOLERANCE_M = 1.0
#: a zone's part outside its (1 m-grown) territory smaller than this is numerical dust
DUST_M2 = 0.01
#: GeoJSON output precision (7 decimals of a degree ≈ 1 cm)
DECIMALS = 7

Geometry = Polygon | MultiPolygon
_NO_ID = np.iinfo(np.int64).max


def N_(s: str) -> str:
    """Marks a msgid for extraction; translation happens where the message is shown."""
    return s


class GeometryError(ValueError):
    """A refused polygon. ``message`` is an English msgid template, ``params`` fill it in."""

    def __init__(self, message: str, **params):
        self.message = message
        self.params = params
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.message % self.params if self.params else self.message


# --- parsing -----------------------------------------------------------------------------

#: GEOS's validity reasons (shapely.is_valid_reason) → our msgids, all "… at lon lat"
_INVALID = {
    "Self-intersection": N_("self-intersection at %(lon)s %(lat)s"),
    "Ring Self-intersection": N_("self-intersection at %(lon)s %(lat)s"),
    "Hole lies outside shell": N_("a hole lies outside the outer ring at %(lon)s %(lat)s"),
    "Holes are nested": N_("a hole lies inside another hole at %(lon)s %(lat)s"),
    "Interior is disconnected": N_("the holes cut the polygon apart at %(lon)s %(lat)s"),
    "Nested shells": N_("one part of the polygon lies inside another at %(lon)s %(lat)s"),
    "Duplicate Rings": N_("a ring is repeated at %(lon)s %(lat)s"),
    "Too few distinct points in geometry component": N_("a ring has fewer than 3 distinct points"),
}


def parse_polygon(geojson: dict | str) -> Geometry:
    """A valid Polygon/MultiPolygon from a GeoJSON geometry or Feature (dict or JSON text).

    Unclosed rings are closed; a third coordinate (altitude) is dropped. Anything else
    that is not a clean lon/lat polygon raises :class:`GeometryError`.
    """
    if isinstance(geojson, (str, bytes)):
        try:
            geojson = json.loads(geojson)
        except ValueError:
            raise GeometryError(N_("not valid GeoJSON")) from None
    if not isinstance(geojson, dict):
        raise GeometryError(N_("not valid GeoJSON"))
    if geojson.get("type") == "Feature":
        geojson = geojson.get("geometry")
        if not geojson:
            raise GeometryError(N_("the polygon is empty"))
        if not isinstance(geojson, dict):
            raise GeometryError(N_("not valid GeoJSON"))
    kind = geojson.get("type")
    coordinates = geojson.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise GeometryError(N_("expected a polygon, got %(type)s"), type=str(kind) if kind else "nothing")
    if not isinstance(coordinates, list):
        raise GeometryError(N_("malformed coordinates"))
    if not coordinates:
        raise GeometryError(N_("the polygon is empty"))

    budget = [MAX_VERTICES]  # counted down while reading, so a huge input is refused early
    if kind == "Polygon":
        geom: Geometry = _polygon(coordinates, budget)
    else:
        if not all(isinstance(part, list) for part in coordinates):
            raise GeometryError(N_("malformed coordinates"))
        geom = MultiPolygon([_polygon(part, budget) for part in coordinates])

    parts = getattr(geom, "geoms", [geom])
    # a flat outer ring (all points on one line) would otherwise read as a self-intersection
    if any(shapely.convex_hull(part.exterior).area == 0 for part in parts):
        raise GeometryError(N_("the polygon has zero area"))
    reason = shapely.is_valid_reason(geom)
    if reason != "Valid Geometry":
        raise _invalid(reason)
    if geom.area == 0:
        raise GeometryError(N_("the polygon has zero area"))
    return geom


def _polygon(rings, budget: list[int]) -> Polygon:
    if not isinstance(rings, list) or not rings:
        raise GeometryError(N_("malformed coordinates"))
    return Polygon(_ring(rings[0], budget), [_ring(r, budget) for r in rings[1:]])


def _ring(ring, budget: list[int]) -> list[tuple[float, float]]:
    if not isinstance(ring, list):
        raise GeometryError(N_("malformed coordinates"))
    if len(ring) > budget[0] + 1:  # refuse a huge ring before reading it
        raise GeometryError(N_("too many vertices (at most %(limit)s)"), limit=MAX_VERTICES)
    points = [_position(p) for p in ring]
    if points and points[0] != points[-1]:
        points.append(points[0])  # Leaflet and hand-written GeoJSON may leave rings open
    if len(set(points)) < 3:
        raise GeometryError(N_("a ring has fewer than 3 distinct points"))
    budget[0] -= len(points) - 1
    if budget[0] < 0:
        raise GeometryError(N_("too many vertices (at most %(limit)s)"), limit=MAX_VERTICES)
    return points


def _position(p) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or len(p) not in (2, 3) or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in p):
        raise GeometryError(N_("malformed coordinates"))
    lon, lat = float(p[0]), float(p[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError(N_("malformed coordinates"))
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise GeometryError(N_("coordinates out of range: longitude %(lon)s, latitude %(lat)s"), lon=lon, lat=lat)
    return lon, lat


def _invalid(reason: str) -> GeometryError:
    """GEOS's "Self-intersection[60.61 56.83]" as a GeometryError naming the place."""
    text, _, where = reason.partition("[")
    try:
        lon, lat = (round(float(v), 6) for v in where.rstrip("]").split()[:2])
    except ValueError:
        lon = lat = None
    template = _INVALID.get(text)
    if template is None:
        if lon is None:
            return GeometryError(N_("invalid polygon: %(reason)s"), reason=text)
        return GeometryError(N_("invalid polygon: %(reason)s at %(lon)s %(lat)s"), reason=text, lon=lon, lat=lat)
    if "%(lon)s" in template and lon is None:
        return GeometryError(N_("invalid polygon: %(reason)s"), reason=text)
    return GeometryError(template, **({"lon": lon, "lat": lat} if "%(lon)s" in template else {}))


def to_geojson(geom: BaseGeometry) -> dict:
    """A GeoJSON geometry dict (lists, coordinates rounded to 7 decimals ≈ 1 cm)."""
    return _rounded(mapping(geom))


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return round(value, DECIMALS)
    return value


# --- metres -----------------------------------------------------------------------------


def _utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS84 UTM zone (UPS near the poles) containing lon/lat."""
    if lat > 84:
        return 32661
    if lat < -80:
        return 32761
    zone = min(int((lon + 180) // 6) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=64)
def _to_metres_transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def _projector(geom: BaseGeometry):
    """A function projecting lon/lat geometries into metres around ``geom``'s centroid."""
    c = geom.centroid
    transformer = _to_metres_transformer(_utm_epsg(c.x, c.y))

    def project(g: BaseGeometry) -> BaseGeometry:
        return shapely.transform(g, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))

    return project


def _shrunk(geom_m: BaseGeometry) -> BaseGeometry:
    return geom_m.buffer(-TOLERANCE_M / 2)


def _first_overlap(geom: Geometry, others: Iterable[tuple[str, Geometry]], project) -> str | None:
    """The name of the first of ``others`` overlapping ``geom`` by more than the tolerance.

    Both sides shrink by half the tolerance, so a sliver narrower than 1 m (and a shared
    edge) is no overlap. Only polygons that touch ``geom`` at all (STRtree, in degrees)
    are projected.
    """
    others = list(others)
    if not others:
        return None
    names = [name for name, _ in others]
    tree = shapely.STRtree([g for _, g in others])
    candidates = np.sort(tree.query(geom, predicate="intersects"))
    if not len(candidates):
        return None
    mine = _shrunk(project(geom))
    if mine.is_empty:
        return None
    shapely.prepare(mine)
    for i in candidates:
        if mine.intersects(_shrunk(project(tree.geometries[i]))):
            return names[i]
    return None


# --- the rules --------------------------------------------------------------------------


def check_territory(geom: Geometry, others: Iterable[tuple[str, Geometry]]) -> None:
    """Refuse a territory overlapping another of its region (``others``: name, geometry;
    without the territory itself) by more than 1 m. Sharing an edge is fine."""
    name = _first_overlap(geom, others, _projector(geom))
    if name is not None:
        raise GeometryError(N_("overlaps territory %(name)s"), name=name)


def check_zone(geom: Geometry, territory: tuple[str, Geometry],
               siblings: Iterable[tuple[str, Geometry]]) -> None:
    """Refuse a zone sticking out of its territory by more than 1 m, or overlapping one of
    its ``siblings`` (the territory's other zones: name, geometry) by more than 1 m."""
    project = _projector(geom)
    territory_name, territory_geom = territory
    zone_m, territory_m = project(geom), project(territory_geom)
    outside = zone_m.difference(territory_m.buffer(TOLERANCE_M))
    if not outside.is_empty and outside.area >= DUST_M2:
        raise GeometryError(N_("lies outside territory %(name)s by up to %(metres)s m"), name=territory_name,
                            metres=round(_farthest(outside, territory_m), 1))
    name = _first_overlap(geom, siblings, project)
    if name is not None:
        raise GeometryError(N_("overlaps zone %(name)s"), name=name)


def _farthest(outside: BaseGeometry, territory_m: BaseGeometry) -> float:
    """About the largest distance (m) from a point of ``outside`` to ``territory_m``.

    Sampled on the densified boundary of ``outside`` (to within half a step) plus the
    innermost point of each part (the centre of a hole the zone covers, say).
    """
    step = max(0.2, outside.length / 2000)
    samples = [shapely.get_coordinates(shapely.segmentize(outside, step))]
    parts = getattr(outside, "geoms", [outside])
    samples.append(np.array([shapely.get_coordinates(polylabel(p, tolerance=step))[0]
                             for p in parts if isinstance(p, Polygon) and not p.is_empty]).reshape(-1, 2))
    points = shapely.points(np.concatenate(samples))
    return float(shapely.distance(points, territory_m).max())


def assign_points(lats: np.ndarray, lons: np.ndarray, polygons: Sequence[tuple[int, Geometry]]) -> np.ndarray:
    """For each point, the id of the polygon containing it (its boundary included), the
    lowest id when several do (a point on a shared edge), 0 when none: int64, vectorised."""
    lats = np.asarray(lats, dtype=float)
    lons = np.asarray(lons, dtype=float)
    if lats.ndim != 1 or lats.shape != lons.shape:
        raise ValueError("lats and lons must be 1-d arrays of one length")
    if not len(lats) or not len(polygons):
        return np.zeros(len(lats), dtype=np.int64)
    ids, geoms = zip(*polygons)
    tree = shapely.STRtree(np.asarray(geoms, dtype=object))
    point_i, tree_i = tree.query(shapely.points(lons, lats), predicate="intersects")
    # the lowest id per point (ties on shared edges and vertices are few; ufunc.at is cheap)
    lowest = np.full(len(lats), _NO_ID, dtype=np.int64)
    np.minimum.at(lowest, point_i, np.asarray(ids, dtype=np.int64)[tree_i])
    lowest[lowest == _NO_ID] = 0
    return lowest
