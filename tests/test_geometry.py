"""The pure polygon rules (territories.geometry): parsing, the 1 m tolerances, assigning buildings.

Shapes are built in metres east/north of a point in Yekaterinburg and converted to lon/lat
with 1° lat ≈ 111,320 m and 1° lon ≈ 111,320 · cos(lat) m, so a "0.3 m" or "20 m" below
really is that many metres (to a fraction of a percent) and the tolerance tests straddle 1 m.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from territories.geometry import (MAX_VERTICES, GeometryError, assign_points, check_territory, check_zone,
                                  parse_polygon, to_geojson)

LAT0, LON0 = 56.84, 60.6
M_LAT = 111_320.0
M_LON = 111_320.0 * math.cos(math.radians(LAT0))


def ll(x_m: float, y_m: float) -> tuple[float, float]:
    """lon, lat of the point x_m metres east and y_m metres north of (LAT0, LON0)."""
    return LON0 + x_m / M_LON, LAT0 + y_m / M_LAT


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A lon/lat rectangle given in metres (west, south, east, north)."""
    (w, s), (e, n) = ll(x0, y0), ll(x1, y1)
    return box(w, s, e, n)


def ring(*points_m) -> list[list[float]]:
    return [list(ll(x, y)) for x, y in points_m]


def refused(geojson) -> GeometryError:
    with pytest.raises(GeometryError) as info:
        parse_polygon(geojson)
    return info.value


SQUARE = {"type": "Polygon", "coordinates": [ring((0, 0), (100, 0), (100, 100), (0, 100), (0, 0))]}


# --- GeometryError ------------------------------------------------------------------------


def test_error_keeps_the_msgid_and_its_params():
    e = GeometryError("overlaps territory %(name)s", name="Центр-1")
    assert isinstance(e, ValueError)
    assert e.message == "overlaps territory %(name)s"
    assert e.params == {"name": "Центр-1"}
    assert str(e) == "overlaps territory Центр-1"
    assert str(GeometryError("the polygon is empty")) == "the polygon is empty"


# --- parsing ------------------------------------------------------------------------------


def test_parses_a_polygon_dict_json_text_and_a_feature():
    geom = parse_polygon(SQUARE)
    assert isinstance(geom, Polygon) and geom.is_valid
    assert geom.exterior.coords[0] == tuple(SQUARE["coordinates"][0][0])
    assert parse_polygon(json.dumps(SQUARE)).equals(geom)
    feature = {"type": "Feature", "properties": {"name": "Центр-1"}, "geometry": SQUARE}
    assert parse_polygon(feature).equals(geom)
    assert parse_polygon(json.dumps(feature)).equals(geom)


def test_parses_a_multipolygon_and_a_polygon_with_a_hole():
    multi = {"type": "MultiPolygon", "coordinates": [
        [ring((0, 0), (100, 0), (100, 100), (0, 100), (0, 0))],
        [ring((200, 0), (300, 0), (300, 100), (200, 100), (200, 0))],
    ]}
    geom = parse_polygon(multi)
    assert isinstance(geom, MultiPolygon) and len(geom.geoms) == 2
    holed = {"type": "Polygon", "coordinates": [ring((0, 0), (100, 0), (100, 100), (0, 100), (0, 0)),
                                                 ring((40, 40), (60, 40), (60, 60), (40, 60), (40, 40))]}
    assert len(parse_polygon(holed).interiors) == 1


def test_closes_an_open_ring_and_drops_altitude():
    open_ring = {"type": "Polygon", "coordinates": [ring((0, 0), (100, 0), (100, 100), (0, 100))]}
    geom = parse_polygon(open_ring)
    assert geom.exterior.is_closed and len(geom.exterior.coords) == 5
    assert geom.equals(parse_polygon(SQUARE))
    with_altitude = {"type": "Polygon", "coordinates": [[[*p, 250.0] for p in SQUARE["coordinates"][0]]]}
    assert not parse_polygon(with_altitude).has_z


def test_refuses_a_bowtie_naming_where_it_crosses():
    bowtie = {"type": "Polygon", "coordinates": [ring((0, 0), (100, 100), (100, 0), (0, 100), (0, 0))]}
    e = refused(bowtie)
    assert e.message == "self-intersection at %(lon)s %(lat)s"
    centre = ll(50, 50)
    assert e.params["lon"] == pytest.approx(centre[0], abs=1e-6)
    assert e.params["lat"] == pytest.approx(centre[1], abs=1e-6)
    assert str(e).startswith("self-intersection at 60.60")


def test_refuses_other_invalid_shapes():
    outer = ring((0, 0), (100, 0), (100, 100), (0, 100), (0, 0))
    hole_outside = {"type": "Polygon", "coordinates": [outer, ring((200, 0), (300, 0), (300, 100), (200, 0))]}
    assert refused(hole_outside).message == "a hole lies outside the outer ring at %(lon)s %(lat)s"
    overlapping_parts = {"type": "MultiPolygon", "coordinates": [
        [outer], [ring((50, 50), (150, 50), (150, 150), (50, 150), (50, 50))]]}
    assert refused(overlapping_parts).message == "self-intersection at %(lon)s %(lat)s"


@pytest.mark.parametrize("coordinates", [
    [ring((0, 0), (100, 0), (0, 0))],                # two distinct points, closed
    [ring((0, 0), (100, 0))],                        # two distinct points, open
    [ring((0, 0), (0, 0), (0, 0), (0, 0))],          # one point repeated
])
def test_refuses_rings_with_too_few_points(coordinates):
    e = refused({"type": "Polygon", "coordinates": coordinates})
    assert e.message == "a ring has fewer than 3 distinct points"


def test_refuses_a_zero_area_ring():
    flat = {"type": "Polygon", "coordinates": [ring((0, 0), (50, 0), (100, 0), (0, 0))]}
    assert refused(flat).message == "the polygon has zero area"


@pytest.mark.parametrize("position", [[200.0, 56.84], [-180.5, 56.84], [60.6, 91.0], [60.6, -90.01]])
def test_refuses_coordinates_out_of_range(position):
    coordinates = [[position, [60.61, 56.84], [60.61, 56.85], [60.6, 56.85], position]]
    e = refused({"type": "Polygon", "coordinates": coordinates})
    assert e.message == "coordinates out of range: longitude %(lon)s, latitude %(lat)s"
    assert (e.params["lon"], e.params["lat"]) == tuple(position)


def test_refuses_other_geometry_types():
    line = {"type": "LineString", "coordinates": [[60.6, 56.84], [60.61, 56.85]]}
    e = refused(line)
    assert e.message == "expected a polygon, got %(type)s" and e.params == {"type": "LineString"}
    assert refused({"type": "Feature", "geometry": {"type": "Point", "coordinates": [60.6, 56.84]}}).params == {
        "type": "Point"}
    assert refused({"coordinates": SQUARE["coordinates"]}).params == {"type": "nothing"}


@pytest.mark.parametrize("garbage", [
    "not json", "[1, 2", "42", "null", 42, None, ["Polygon"],
    {"type": "Polygon", "coordinates": "abc"},
    {"type": "Polygon", "coordinates": [[["60.6", "56.84"], ["60.61", "56.84"], ["60.61", "56.85"]]]},
    {"type": "Polygon", "coordinates": [[[60.6], [60.61, 56.84], [60.61, 56.85]]]},
    {"type": "Polygon", "coordinates": [[[60.6, 56.84, 1, 2], [60.61, 56.84], [60.61, 56.85]]]},
    {"type": "Polygon", "coordinates": [[[True, False], [60.61, 56.84], [60.61, 56.85]]]},
    {"type": "Polygon", "coordinates": [[[float("nan"), 56.84], [60.61, 56.84], [60.61, 56.85]]]},
    {"type": "Polygon", "coordinates": [[60.6, 56.84], [60.61, 56.84], [60.61, 56.85]]},
    {"type": "Polygon", "coordinates": [[]]},
    {"type": "MultiPolygon", "coordinates": [[]]},
    {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"][0]]},
    {"type": "Feature", "geometry": "Polygon"},
])
def test_refuses_garbage(garbage):
    e = refused(garbage)
    assert e.message in ("not valid GeoJSON", "malformed coordinates", "expected a polygon, got %(type)s",
                         "a ring has fewer than 3 distinct points")


@pytest.mark.parametrize("geojson", [
    {"type": "Polygon", "coordinates": []},
    {"type": "MultiPolygon", "coordinates": []},
    {"type": "Feature", "geometry": None},
])
def test_refuses_empty_polygons(geojson):
    assert refused(geojson).message == "the polygon is empty"


def circle(vertices: int) -> dict:
    angles = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    points = [list(ll(500 * math.cos(a), 500 * math.sin(a))) for a in angles]
    return {"type": "Polygon", "coordinates": [points + [points[0]]]}


def test_refuses_more_than_10000_vertices():
    assert len(parse_polygon(circle(MAX_VERTICES)).exterior.coords) == MAX_VERTICES + 1
    e = refused(circle(MAX_VERTICES + 1))
    assert e.message == "too many vertices (at most %(limit)s)" and e.params == {"limit": 10_000}
    # counted over all rings and parts together
    half = circle(MAX_VERTICES // 2 + 1)["coordinates"]
    far = [[[x + 0.1, y] for x, y in half[0]]]
    assert refused({"type": "MultiPolygon", "coordinates": [half, far]}).params == {"limit": 10_000}


def test_to_geojson_rounds_to_7_decimals_and_uses_lists():
    geom = Polygon([(60.123456789, 56.1), (60.2, 56.1), (60.2, 56.987654321), (60.123456789, 56.1)])
    out = to_geojson(geom)
    assert out["type"] == "Polygon"
    assert out["coordinates"] == [[[60.1234568, 56.1], [60.2, 56.1], [60.2, 56.9876543], [60.1234568, 56.1]]]
    assert json.loads(json.dumps(out)) == out
    multi = parse_polygon({"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]})
    assert parse_polygon(to_geojson(multi)).equals_exact(multi, tolerance=1e-7)


# --- territories --------------------------------------------------------------------------


def test_territory_overlapping_another_is_refused_naming_it():
    new = rect(0, 0, 500, 500)
    others = [("Север-2", rect(0, 1000, 500, 1500)), ("Центр-1", rect(495, 0, 1000, 500))]
    with pytest.raises(GeometryError) as info:
        check_territory(new, others)
    assert info.value.message == "overlaps territory %(name)s"
    assert str(info.value) == "overlaps territory Центр-1"


def test_territory_conflict_names_the_first_conflicting_one():
    new = rect(0, 0, 500, 500)
    inside, across = rect(100, 100, 200, 200), rect(-100, 400, 600, 600)
    for others, first in (([("Б", across), ("А", inside)], "Б"), ([("А", inside), ("Б", across)], "А")):
        with pytest.raises(GeometryError) as info:
            check_territory(new, [("далеко", rect(5000, 5000, 6000, 6000))] + others)
        assert info.value.params == {"name": first}


def test_territories_sharing_an_edge_or_a_corner_are_fine():
    new = rect(0, 0, 500, 500)
    check_territory(new, [("восток", rect(500, 0, 1000, 500)), ("север", rect(0, 500, 500, 1000)),
                          ("северо-восток", rect(500, 500, 1000, 1000))])
    check_territory(new, [])


def test_territory_sliver_overlap_under_1_m_is_tolerated_5_m_is_not():
    new = rect(0, 0, 500, 500)
    check_territory(new, [("Центр-1", rect(499.7, 0, 1000, 500))])   # 0.3 m
    check_territory(new, [("Центр-1", rect(499.2, 0, 1000, 500))])   # 0.8 m
    with pytest.raises(GeometryError, match="Центр-1"):
        check_territory(new, [("Центр-1", rect(498.5, 0, 1000, 500))])  # 1.5 m
    with pytest.raises(GeometryError, match="Центр-1"):
        check_territory(new, [("Центр-1", rect(495, 0, 1000, 500))])  # 5 m


def test_territory_check_among_hundreds_finds_the_one():
    others = [(f"T{i}-{j}", rect(i * 600, j * 600 + 2000, i * 600 + 500, j * 600 + 2500))
              for i in range(20) for j in range(20)]
    check_territory(rect(0, 0, 500, 500), others)
    with pytest.raises(GeometryError) as info:
        check_territory(rect(3590, 4390, 3700, 4500), others)  # into T6-4 by 10 m on each side
    assert info.value.params == {"name": "T6-4"}


# --- zones --------------------------------------------------------------------------------

TERRITORY = ("Центр-1", rect(0, 0, 1000, 1000))


def test_zone_inside_its_territory_is_fine():
    check_zone(rect(100, 100, 600, 600), TERRITORY, [])
    check_zone(rect(0, 0, 1000, 1000), TERRITORY, [])  # the whole territory


def test_zone_sticking_out_by_half_a_metre_is_tolerated():
    check_zone(rect(-0.5, 100, 500, 600), TERRITORY, [])
    check_zone(rect(500, 100, 1000.9, 600), TERRITORY, [])


def test_zone_sticking_out_by_20_m_is_refused_naming_the_territory():
    with pytest.raises(GeometryError) as info:
        check_zone(rect(-20, 100, 500, 600), TERRITORY, [])
    e = info.value
    assert e.message == "lies outside territory %(name)s by up to %(metres)s m"
    assert e.params["name"] == "Центр-1"
    assert e.params["metres"] == pytest.approx(20, abs=0.3)
    assert str(e).startswith("lies outside territory Центр-1 by up to ")


def test_zone_sticking_out_by_1_5_m_is_refused():
    with pytest.raises(GeometryError) as info:
        check_zone(rect(-1.5, 100, 500, 600), TERRITORY, [])
    assert info.value.params["metres"] == pytest.approx(1.5, abs=0.1)


def test_zone_over_a_hole_of_its_territory_reports_the_depth():
    holed = shapely.difference(rect(0, 0, 1000, 1000), rect(400, 400, 600, 600))
    with pytest.raises(GeometryError) as info:
        check_zone(rect(300, 300, 700, 700), ("Кольцо", holed), [])
    assert info.value.params["name"] == "Кольцо"
    assert info.value.params["metres"] == pytest.approx(100, abs=1)


def test_zone_overlapping_a_sibling_is_refused_naming_it():
    siblings = [("Зона 1", rect(0, 0, 500, 500)), ("Зона 2", rect(500, 0, 1000, 500))]
    check_zone(rect(0, 500, 1000, 1000), TERRITORY, siblings)          # shares their edges
    check_zone(rect(0, 499.6, 1000, 1000), TERRITORY, siblings)        # 0.4 m sliver
    with pytest.raises(GeometryError) as info:
        check_zone(rect(600, 490, 1000, 1000), TERRITORY, siblings)
    assert info.value.message == "overlaps zone %(name)s"
    assert str(info.value) == "overlaps zone Зона 2"


def test_zone_outside_its_territory_is_reported_before_sibling_overlaps():
    with pytest.raises(GeometryError) as info:
        check_zone(rect(-50, 0, 500, 500), TERRITORY, [("Зона 1", rect(0, 0, 500, 500))])
    assert info.value.params["name"] == "Центр-1"


# --- assigning buildings ------------------------------------------------------------------

WEST = box(60.60, 56.84, 60.61, 56.85)
EAST = box(60.61, 56.84, 60.62, 56.85)


def test_point_inside_and_outside():
    out = assign_points(np.array([56.845, 56.845, 56.9]), np.array([60.605, 60.615, 60.605]), [(7, WEST), (3, EAST)])
    assert out.dtype == np.int64
    assert out.tolist() == [7, 3, 0]


def test_point_on_a_shared_edge_goes_to_the_lowest_id():
    lats, lons = np.array([56.845, 56.84, 56.85]), np.array([60.61, 60.61, 60.61])
    assert assign_points(lats, lons, [(7, WEST), (3, EAST)]).tolist() == [3, 3, 3]
    assert assign_points(lats, lons, [(3, WEST), (7, EAST)]).tolist() == [3, 3, 3]
    # the outer boundary counts too
    assert assign_points(np.array([56.845]), np.array([60.60]), [(7, WEST), (3, EAST)]).tolist() == [7]


def test_point_on_a_vertex_shared_by_three_polygons_goes_to_the_lowest_id():
    north = box(60.60, 56.85, 60.62, 56.86)
    polygons = [(9, north), (4, EAST), (6, WEST)]
    assert assign_points(np.array([56.85]), np.array([60.61]), polygons).tolist() == [4]
    polygons = [(9, north), (14, EAST), (6, WEST)]
    assert assign_points(np.array([56.85]), np.array([60.61]), polygons).tolist() == [6]


def test_multipolygon_membership():
    multi = MultiPolygon([box(60.60, 56.84, 60.61, 56.85), box(60.63, 56.84, 60.64, 56.85)])
    out = assign_points(np.array([56.845, 56.845, 56.845]), np.array([60.605, 60.635, 60.62]), [(5, multi)])
    assert out.tolist() == [5, 5, 0]


def test_a_hole_excludes_its_points():
    holed = Polygon(box(60.60, 56.84, 60.62, 56.86).exterior.coords, [box(60.605, 56.845, 60.615, 56.855).exterior.coords])
    lats, lons = np.array([56.85, 56.842, 56.85]), np.array([60.61, 60.61, 60.605])
    assert assign_points(lats, lons, [(2, holed)]).tolist() == [0, 2, 2]   # the hole's edge still counts
    island = box(60.605, 56.845, 60.615, 56.855)  # a zone filling the hole
    assert assign_points(lats, lons, [(2, holed), (8, island)]).tolist() == [8, 2, 2]


def test_empty_inputs():
    empty = assign_points(np.array([]), np.array([]), [(1, WEST)])
    assert empty.dtype == np.int64 and empty.shape == (0,)
    none = assign_points(np.array([56.845, 56.9]), np.array([60.605, 60.6]), [])
    assert none.dtype == np.int64 and none.tolist() == [0, 0]
    assert assign_points([], [], []).shape == (0,)
    with pytest.raises(ValueError):
        assign_points(np.array([56.8, 56.9]), np.array([60.6]), [(1, WEST)])


def test_assign_points_agrees_with_a_loop_over_random_points():
    rng = np.random.default_rng(7)
    polygons = [(11, WEST), (4, EAST), (8, box(60.605, 56.845, 60.615, 56.86)),
                (2, MultiPolygon([box(60.62, 56.84, 60.63, 56.845), box(60.60, 56.85, 60.605, 56.855)]))]
    lats = np.concatenate([rng.uniform(56.835, 56.865, 2000), [56.845, 56.85, 56.84, 56.845]])
    lons = np.concatenate([rng.uniform(60.595, 60.635, 2000), [60.61, 60.605, 60.62, 60.62]])
    out = assign_points(lats, lons, polygons)
    for lat, lon, got in zip(lats, lons, out):
        ids = [pid for pid, geom in polygons if geom.intersects(shapely.Point(lon, lat))]
        assert got == min(ids, default=0)
