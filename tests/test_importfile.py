"""Parsing of building and polygon import files (territories/importfile.py): pure, no app."""
from __future__ import annotations

import ast
import json
import os
from datetime import datetime, timezone

import pytest
from shapely.geometry import Point, shape
from zoneinfo import ZoneInfo

from territories import importfile
from territories.importfile import (BuildingRecord, FileUnreadable, PolygonRecord, Rejection, parse_buildings,
                                    parse_buildings_json, parse_polygons, parse_polygons_json, report_lines)

TZ = ZoneInfo("Asia/Yekaterinburg")
UTC = timezone.utc

POINT = {"type": "Point", "coordinates": [60.6122, 56.8519]}
SQUARE = {"type": "Polygon", "coordinates": [[[60.0, 56.0], [60.001, 56.0], [60.001, 56.001], [60.0, 56.001],
                                               [60.0, 56.0]]]}
BOWTIE = {"type": "Polygon", "coordinates": [[[60.0, 56.0], [60.001, 56.001], [60.001, 56.0], [60.0, 56.001],
                                               [60.0, 56.0]]]}


def props(**overrides):
    base = {"external_id": "b1", "address": "ul. Lenina, 5", "apartments": 12}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def feature(properties=None, geometry=POINT):
    return {"type": "Feature", "geometry": geometry, "properties": props() if properties is None else properties}


def collection(*features) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


def parse(*features):
    return parse_buildings(collection(*features), "buildings.geojson", tz=TZ)


def only_rejection(feature_) -> Rejection:
    records, rejections = parse(feature_)
    assert records == []
    assert len(rejections) == 1
    return rejections[0]


def parse_csv(text: str, filename="buildings.csv"):
    return parse_buildings(text.encode("utf-8"), filename, tz=TZ)


CSV_HEADER = "external_id,address,apartments,entrances,floors,connected_at,lat,lon\n"


# --------------------------------------------------------------------------- valid GeoJSON records

def test_point_record_carries_only_present_fields():
    records, rejections = parse(feature(props(external_id="  b1 ", address="  ul. Lenina, 5 ")))
    assert rejections == []
    [record] = records
    assert isinstance(record, BuildingRecord)
    assert (record.index, record.label, record.external_id) == (1, "#1", "b1")
    assert (record.lat, record.lon, record.footprint) == (56.8519, 60.6122, None)
    assert record.fields == {"address": "ul. Lenina, 5", "apartments": 12}


def test_all_fields_parsed():
    records, rejections = parse(feature(props(apartments=120, entrances=4, floors=10,
                                              connected_at="2024-05-01T10:30:00+05:00")))
    assert rejections == []
    assert records[0].fields == {"address": "ul. Lenina, 5", "apartments": 120, "entrances": 4, "floors": 10,
                                 "connected_at": datetime(2024, 5, 1, 5, 30, tzinfo=UTC)}


def test_integer_external_id_is_text():
    records, _ = parse(feature(props(external_id=1042)))
    assert records[0].external_id == "1042"


@pytest.mark.parametrize("value, expected", [(12.0, 12), ("12", 12), (" 7 ", 7), ("7.0", 7)])
def test_integral_numbers_are_accepted_as_integers(value, expected):
    records, rejections = parse(feature(props(apartments=value)))
    assert rejections == []
    assert records[0].fields["apartments"] == expected
    assert type(records[0].fields["apartments"]) is int


def test_floors_null_is_an_explicit_no_floor_count_and_other_nulls_are_absent():
    records, _ = parse(feature(props(floors=None, entrances=None, connected_at=None)))
    assert records[0].fields == {"address": "ul. Lenina, 5", "apartments": 12, "floors": None}


def test_blank_optional_strings_are_absent():
    records, _ = parse(feature(props(floors="", entrances=" ", connected_at="")))
    assert records[0].fields == {"address": "ul. Lenina, 5", "apartments": 12}


def test_integer_coordinates_are_accepted():
    records, _ = parse(feature(geometry={"type": "Point", "coordinates": [60, 56, 250.5]}))
    assert (records[0].lat, records[0].lon) == (56.0, 60.0)
    assert type(records[0].lat) is float


def test_footprint_location_is_its_representative_point():
    records, rejections = parse(feature(geometry=SQUARE))
    assert rejections == []
    [record] = records
    assert record.footprint == SQUARE
    polygon = shape(SQUARE)
    assert polygon.contains(Point(record.lon, record.lat))
    assert (record.lat, record.lon) == (polygon.representative_point().y, polygon.representative_point().x)


def test_multipolygon_footprint():
    multi = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"],
                                                     [[[61.0, 57.0], [61.001, 57.0], [61.001, 57.001],
                                                       [61.0, 57.0]]]]}
    records, rejections = parse(feature(geometry=multi))
    assert rejections == []
    assert records[0].footprint == multi
    assert shape(multi).contains(Point(records[0].lon, records[0].lat))


def test_footprint_with_a_hole():
    outer = [[60.0, 56.0], [60.01, 56.0], [60.01, 56.01], [60.0, 56.01], [60.0, 56.0]]
    hole = [[60.002, 56.002], [60.008, 56.002], [60.008, 56.008], [60.002, 56.008], [60.002, 56.002]]
    geometry = {"type": "Polygon", "coordinates": [outer, hole]}
    records, rejections = parse(feature(geometry=geometry))
    assert rejections == []
    assert shape(geometry).contains(Point(records[0].lon, records[0].lat))


# --------------------------------------------------------------------------- connected_at

@pytest.mark.parametrize("given, expected", [
    ("2024-05-01", datetime(2024, 4, 30, 19, 0, tzinfo=UTC)),  # a date: midnight in the company zone (UTC+5)
    ("2024-05-01T10:00", datetime(2024, 5, 1, 5, 0, tzinfo=UTC)),  # naive: in the company zone
    ("2024-05-01 10:00:00", datetime(2024, 5, 1, 5, 0, tzinfo=UTC)),
    ("2024-05-01T10:00:00+03:00", datetime(2024, 5, 1, 7, 0, tzinfo=UTC)),  # aware: converted
    ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
])
def test_connected_at_becomes_aware_utc(given, expected):
    records, rejections = parse(feature(props(connected_at=given)))
    assert rejections == []
    moment = records[0].fields["connected_at"]
    assert moment == expected
    assert moment.utcoffset().total_seconds() == 0


def test_connected_at_parse_is_shared_between_records_but_correct_for_each():
    records, _ = parse(feature(props(external_id="a", connected_at="2024-05-01")),
                       feature(props(external_id="b", connected_at="2024-05-01")),
                       feature(props(external_id="c", connected_at="2024-05-02")))
    assert [r.fields["connected_at"].day for r in records] == [30, 30, 1]


# --------------------------------------------------------------------------- GeoJSON rejections

REJECTIONS = [
    # external_id
    ("no id", props(external_id=_DROP), POINT, "missing external_id"),
    ("null id", props(external_id=None), POINT, "missing external_id"),
    ("empty id", props(external_id=""), POINT, "missing external_id"),
    ("blank id", props(external_id="   "), POINT, "missing external_id"),
    ("list id", props(external_id=[1, 2]), POINT, "external_id must be a string, got [1, 2]"),
    ("float id", props(external_id=1.5), POINT, "external_id must be a string, got 1.5"),
    ("bool id", props(external_id=True), POINT, "external_id must be a string, got true"),
    ("long id", props(external_id="x" * 101), POINT, "external_id is longer than 100 characters"),
    # geometry
    ("null geometry", props(), None, "no geometry"),
    ("text geometry", props(), "POINT(1 2)", "geometry is not a GeoJSON object"),
    ("line", props(), {"type": "LineString", "coordinates": [[60, 56], [61, 57]]},
     "unsupported geometry type LineString"),
    ("no type", props(), {"coordinates": [60, 56]}, "unsupported geometry type null"),
    ("text coordinates", props(), {"type": "Point", "coordinates": ["60.1", "56.2"]}, "malformed coordinates"),
    ("bool coordinates", props(), {"type": "Point", "coordinates": [True, 56.2]}, "malformed coordinates"),
    ("one coordinate", props(), {"type": "Point", "coordinates": [60.1]}, "malformed coordinates"),
    ("no coordinates", props(), {"type": "Point"}, "malformed coordinates"),
    ("nan", props(), {"type": "Point", "coordinates": [60.1, float("nan")]}, "malformed coordinates"),
    ("inf", props(), {"type": "Point", "coordinates": [float("inf"), 56.2]}, "malformed coordinates"),
    ("lat", props(), {"type": "Point", "coordinates": [60.61, 160.17]}, "latitude 160.17 out of range"),
    ("south", props(), {"type": "Point", "coordinates": [60.61, -90.5]}, "latitude -90.5 out of range"),
    ("lon", props(), {"type": "Point", "coordinates": [200.5, 56.1]}, "longitude 200.5 out of range"),
    ("int lon", props(), {"type": "Point", "coordinates": [10 ** 400, 56.1]},
     "longitude " + str(10 ** 400) + " out of range"),
    ("bowtie", props(), BOWTIE, "invalid footprint polygon: Self-intersection[60.0005 56.0005]"),
    ("empty polygon", props(), {"type": "Polygon", "coordinates": []}, "empty footprint polygon"),
    ("empty multipolygon", props(), {"type": "MultiPolygon", "coordinates": []}, "empty footprint polygon"),
    ("short ring", props(), {"type": "Polygon", "coordinates": [[[60, 56], [60.1, 56], [60, 56]]]},
     "a polygon ring needs at least 4 positions, got 3"),
    ("ring of text", props(), {"type": "Polygon", "coordinates": ["abcd"]}, "malformed coordinates"),
    ("mixed dimensions", props(),
     {"type": "Polygon", "coordinates": [[[60, 56], [60.1, 56, 3], [60.1, 56.1], [60, 56]]]},
     "malformed coordinates"),
    ("polygon vertex lat", props(),
     {"type": "Polygon", "coordinates": [[[60, 56], [60.1, 96.5], [60.1, 56.1], [60, 56]]]},
     "latitude 96.5 out of range"),
    # address
    ("no address", props(address=_DROP), POINT, "missing address"),
    ("null address", props(address=None), POINT, "missing address"),
    ("blank address", props(address="  "), POINT, "missing address"),
    ("number address", props(address=12), POINT, "address must be text, got 12"),
    ("long address", props(address="a" * 301), POINT, "address is longer than 300 characters"),
    # apartments
    ("no apartments", props(apartments=_DROP), POINT, "missing apartments"),
    ("null apartments", props(apartments=None), POINT, "missing apartments"),
    ("blank apartments", props(apartments=""), POINT, "missing apartments"),
    ("text apartments", props(apartments="abc"), POINT, "apartments must be a whole number, got 'abc'"),
    ("fraction", props(apartments=12.5), POINT, "apartments must be a whole number, got 12.5"),
    ("text fraction", props(apartments="12.5"), POINT, "apartments must be a whole number, got '12.5'"),
    ("bool apartments", props(apartments=True), POINT, "apartments must be a whole number, got true"),
    ("underscore", props(apartments="1_000"), POINT, "apartments must be a whole number, got '1_000'"),
    ("list apartments", props(apartments=[12]), POINT, "apartments must be a whole number, got [12]"),
    ("zero apartments", props(apartments=0), POINT, "apartments must be at least 1, got 0"),
    ("negative apartments", props(apartments=-3), POINT, "apartments must be at least 1, got -3"),
    ("huge apartments", props(apartments=10 ** 12), POINT,
     "apartments must be at most 10000, got 1000000000000"),
    # entrances
    ("text entrances", props(entrances="two"), POINT, "entrances must be a whole number, got 'two'"),
    ("fraction entrances", props(entrances=1.5), POINT, "entrances must be a whole number, got 1.5"),
    ("zero entrances", props(entrances=0), POINT, "entrances must be at least 1, got 0"),
    ("many entrances", props(entrances=101, apartments=1000), POINT, "entrances must be at most 100, got 101"),
    ("empty entrance", props(entrances=5, apartments=4), POINT, "more entrances (5) than apartments (4)"),
    # floors
    ("text floors", props(floors="nine"), POINT, "floors must be a whole number, got 'nine'"),
    ("zero floors", props(floors=0), POINT, "floors must be at least 1, got 0"),
    ("tall", props(floors=201), POINT, "floors must be at most 200, got 201"),
    # connected_at
    ("yesterday", props(connected_at="yesterday"), POINT,
     "connected_at must be an ISO date or datetime, got 'yesterday'"),
    ("bad month", props(connected_at="2024-13-01"), POINT,
     "connected_at must be an ISO date or datetime, got '2024-13-01'"),
    ("epoch", props(connected_at=1714521600), POINT,
     "connected_at must be an ISO date or datetime, got 1714521600"),
    ("russian date", props(connected_at="01.05.2024"), POINT,
     "connected_at must be an ISO date or datetime, got '01.05.2024'"),
]


@pytest.mark.parametrize("properties, geometry, reason", [r[1:] for r in REJECTIONS],
                         ids=[r[0] for r in REJECTIONS])
def test_geojson_rejection(properties, geometry, reason):
    rejection = only_rejection(feature(properties, geometry))
    assert rejection.reason == reason
    assert (rejection.index, rejection.label) == (1, "#1")
    assert rejection.message % rejection.params == reason
    assert "%" not in rejection.reason


def test_rejection_keeps_the_external_id_when_it_was_read():
    rejection = only_rejection(feature(props(external_id="bad-lat"), {"type": "Point", "coordinates": [1, 160.17]}))
    assert rejection.external_id == "bad-lat"
    assert only_rejection(feature(props(external_id=None))).external_id is None


def test_geometry_key_absent_is_no_geometry():
    rejection = only_rejection({"type": "Feature", "properties": props()})
    assert rejection.reason == "no geometry"


@pytest.mark.parametrize("bad, reason", [
    (5, "feature is not a JSON object"),
    ("Feature", "feature is not a JSON object"),
    ({"type": "Feature", "geometry": POINT, "properties": ["b1"]}, "properties is not a JSON object"),
    ({"type": "Feature", "geometry": POINT, "properties": None}, "missing external_id"),
    ({"type": "Feature", "geometry": POINT}, "missing external_id"),
])
def test_malformed_features(bad, reason):
    assert only_rejection(bad).reason == reason


def test_nan_and_infinity_literals_in_the_file():
    data = (b'{"type": "FeatureCollection", "features": ['
            b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [NaN, 56.1]},'
            b' "properties": {"external_id": "n", "address": "a", "apartments": 1}},'
            b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [60.1, -Infinity]},'
            b' "properties": {"external_id": "i", "address": "a", "apartments": 1}}]}')
    records, rejections = parse_buildings(data, "x.geojson", tz=TZ)
    assert records == []
    assert [r.reason for r in rejections] == ["malformed coordinates", "malformed coordinates"]


def test_one_rejection_per_record_in_check_order():
    far = {"type": "Point", "coordinates": [60.1, 160.17]}
    records, rejections = parse(
        feature(props(external_id="a", address=None, apartments=0), far),  # geometry before address
        feature(props(external_id="a", address=None), far),  # duplicate before geometry
        feature(props(external_id="b", address=None, apartments=0)),  # address before apartments
        feature(props(external_id="c", apartments="x", entrances="y")),  # apartments before entrances
        feature(props(external_id="d", entrances="y", floors="z")),  # entrances before floors
        feature(props(external_id="e", floors="z", connected_at="never")),  # floors before connected_at
        feature(props(external_id=None, address=None), None),  # id before everything
    )
    assert records == []
    assert [r.reason for r in rejections] == [
        "latitude 160.17 out of range",
        "duplicate external_id, first seen at #1",
        "missing address",
        "apartments must be a whole number, got 'x'",
        "entrances must be a whole number, got 'y'",
        "floors must be a whole number, got 'z'",
        "missing external_id",
    ]


def test_duplicates_rejected_after_the_first_occurrence():
    records, rejections = parse(
        feature(props(external_id="a")),
        feature(props(external_id="b")),
        feature(props(external_id="a", apartments=20)),
        feature(props(external_id=" a ")),
        feature(props(external_id="A")),  # ids are case-sensitive
    )
    assert [(r.label, r.external_id) for r in records] == [("#1", "a"), ("#2", "b"), ("#5", "A")]
    assert [(r.label, r.external_id, r.reason) for r in rejections] == [
        ("#3", "a", "duplicate external_id, first seen at #1"),
        ("#4", "a", "duplicate external_id, first seen at #1"),
    ]


def test_a_rejected_first_occurrence_still_claims_its_id():
    _, rejections = parse(feature(props(external_id="a", apartments=0)), feature(props(external_id="a")))
    assert [r.reason for r in rejections] == ["apartments must be at least 1, got 0",
                                              "duplicate external_id, first seen at #1"]


def test_valid_records_survive_rejected_neighbours():
    records, rejections = parse(feature(props(external_id="ok1")), feature(props(external_id="bad", apartments=0)),
                                feature(props(external_id="ok2")))
    assert [r.external_id for r in records] == ["ok1", "ok2"]
    assert [r.index for r in records] == [1, 3]
    assert [r.index for r in rejections] == [2]


def test_long_values_are_shortened_in_messages():
    rejection = only_rejection(feature(props(apartments="9" * 30 + "x" * 100)))
    assert len(rejection.reason) < 120
    assert rejection.reason.endswith("…'")


# --------------------------------------------------------------------------- CLI lines

def test_cli_line_is_the_literal_form():
    good = [feature(props(external_id=f"g{i}")) for i in range(6)]
    bad = feature(props(external_id="bad-lat"), {"type": "Point", "coordinates": [60.61, 160.17]})
    records, rejections = parse(*good, bad)
    assert len(records) == 6
    assert rejections[0].line() == "rejected #7 (external_id=bad-lat): latitude 160.17 out of range"


def test_cli_line_without_an_id():
    rejection = only_rejection(feature(props(external_id=None)))
    assert rejection.line() == "rejected #1 (external_id=): missing external_id"


def test_report_lines():
    rejections = [Rejection(9, "#9", "z", importfile.N_("missing address"), {}),
                  Rejection(7, "#7", "bad-lat", importfile.N_("latitude %(value)s out of range"),
                            {"value": "160.17"})]
    assert report_lines(85, 0, 2, rejections) == [
        "imported 85, updated 0, unchanged 2, rejected 2",
        "rejected #7 (external_id=bad-lat): latitude 160.17 out of range",
        "rejected #9 (external_id=z): missing address",
    ]
    assert report_lines(0, 0, 0, []) == ["imported 0, updated 0, unchanged 0, rejected 0"]
    assert report_lines(1, 2, 3, [Rejection(2, "#2", "North", "zone without territory")], key="name") == [
        "imported 1, updated 2, unchanged 3, rejected 1",
        "rejected #2 (name=North): zone without territory",
    ]


def test_rejection_localized_translates_the_template():
    rejection = Rejection(3, "#3", "x", importfile.N_("apartments must be at least 1, got %(value)s"),
                          {"field": "apartments", "value": 0})
    catalog = {"apartments must be at least 1, got %(value)s": "квартир должно быть не меньше 1, а не %(value)s"}
    assert rejection.localized(lambda s: catalog.get(s, s)) == "квартир должно быть не меньше 1, а не 0"
    assert Rejection(1, "#1", None, "missing address").localized(str.upper) == "MISSING ADDRESS"


# --------------------------------------------------------------------------- CSV

def test_csv_records_with_bom_and_empty_cells_absent():
    text = ("\ufeff" + CSV_HEADER
            + 'b1,"ul. Lenina, 5",120,4,10,2024-05-01,56.8519,60.6122\n'
            + "b2, ul. Mira 1 ,12,,,,56.85,60.61\n")
    records, rejections = parse_csv(text)
    assert rejections == []
    assert [(r.index, r.label, r.external_id) for r in records] == [(2, "line 2", "b1"), (3, "line 3", "b2")]
    assert (records[0].lat, records[0].lon, records[0].footprint) == (56.8519, 60.6122, None)
    assert records[0].fields == {"address": "ul. Lenina, 5", "apartments": 120, "entrances": 4, "floors": 10,
                                 "connected_at": datetime(2024, 4, 30, 19, 0, tzinfo=UTC)}
    assert records[1].fields == {"address": "ul. Mira 1", "apartments": 12}


def test_csv_columns_in_any_order_case_and_extra_columns_ignored():
    text = " LON ,Lat,Apartments,Address,External_ID,comment\r\n60.61,56.85,7,Mira 1,b9,whatever\r\n"
    records, rejections = parse_csv(text)
    assert rejections == []
    assert (records[0].external_id, records[0].lat, records[0].lon) == ("b9", 56.85, 60.61)
    assert records[0].fields == {"address": "Mira 1", "apartments": 7}


CSV_REJECTIONS = [
    ("no id", ",Mira 1,12,,,,56.85,60.61", "missing external_id"),
    ("blank id", "  ,Mira 1,12,,,,56.85,60.61", "missing external_id"),
    ("no address", "b1,,12,,,,56.85,60.61", "missing address"),
    ("no apartments", "b1,Mira 1,,,,,56.85,60.61", "missing apartments"),
    ("no lat", "b1,Mira 1,12,,,,,60.61", "missing lat or lon"),
    ("no lon", "b1,Mira 1,12,,,,56.85,", "missing lat or lon"),
    ("text lat", "b1,Mira 1,12,,,,abc,60.61", "lat must be a number, got 'abc'"),
    ("comma lat", 'b1,Mira 1,12,,,,"56,85",60.61', "lat must be a number, got '56,85'"),
    ("nan lon", "b1,Mira 1,12,,,,56.85,nan", "lon must be a number, got 'nan'"),
    ("inf lat", "b1,Mira 1,12,,,,-inf,60.61", "lat must be a number, got '-inf'"),
    ("lat range", "b1,Mira 1,12,,,,160.170,60.61", "latitude 160.170 out of range"),
    ("lon range", "b1,Mira 1,12,,,,56.85, -181", "longitude -181 out of range"),
    ("text apartments", "b1,Mira 1,abc,,,,56.85,60.61", "apartments must be a whole number, got 'abc'"),
    ("zero apartments", "b1,Mira 1,0,,,,56.85,60.61", "apartments must be at least 1, got 0"),
    ("text entrances", "b1,Mira 1,12,x,,,56.85,60.61", "entrances must be a whole number, got 'x'"),
    ("zero entrances", "b1,Mira 1,12,0,,,56.85,60.61", "entrances must be at least 1, got 0"),
    ("empty entrance", "b1,Mira 1,2,3,,,56.85,60.61", "more entrances (3) than apartments (2)"),
    ("text floors", "b1,Mira 1,12,,9.5,,56.85,60.61", "floors must be a whole number, got '9.5'"),
    ("zero floors", "b1,Mira 1,12,,0,,56.85,60.61", "floors must be at least 1, got 0"),
    ("bad date", "b1,Mira 1,12,,,yesterday,56.85,60.61",
     "connected_at must be an ISO date or datetime, got 'yesterday'"),
    ("extra values", "b1,Mira 1,12,,,,56.85,60.61,surplus",
     "the line has 9 values but the header has 8 columns"),
]


@pytest.mark.parametrize("row, reason", [r[1:] for r in CSV_REJECTIONS], ids=[r[0] for r in CSV_REJECTIONS])
def test_csv_rejection(row, reason):
    records, rejections = parse_csv(CSV_HEADER + "b0,Mira 0,5,,,,56.8,60.6\n" + row + "\n")
    assert [r.external_id for r in records] == ["b0"]
    [rejection] = rejections
    assert (rejection.index, rejection.label, rejection.reason) == (3, "line 3", reason)


def test_csv_line_numbers_count_the_header_blank_lines_and_quoted_newlines():
    text = (CSV_HEADER
            + "b1,Mira 1,12,,,,56.85,60.61\n"  # line 2
            + "\n"  # line 3: blank, skipped
            + ",,,,,,,\n"  # line 4: only commas, skipped
            + 'b2,"Mira 2\nback yard",12,,,,56.85,60.61\n'  # lines 5-6
            + "b3,Mira 3,12,,,,99,60.61\n"  # line 7
            + "b1,Mira 1,12,,,,56.85,60.61\n")  # line 8
    records, rejections = parse_csv(text)
    assert [(r.index, r.external_id) for r in records] == [(2, "b1"), (5, "b2")]
    assert records[1].fields["address"] == "Mira 2\nback yard"
    assert [r.line() for r in rejections] == [
        "rejected line 7 (external_id=b3): latitude 99 out of range",
        "rejected line 8 (external_id=b1): duplicate external_id, first seen at line 2",
    ]


def test_csv_trailing_empty_cells_and_short_rows():
    text = "external_id,address,apartments,lat,lon,floors\nb1,Mira 1,12,56.85,60.61,,,\nb2,Mira 2,5,56.8,60.6\n"
    records, rejections = parse_csv(text)
    assert rejections == []
    assert [r.fields for r in records] == [{"address": "Mira 1", "apartments": 12},
                                           {"address": "Mira 2", "apartments": 5}]


def test_csv_without_trailing_newline_and_with_crlf():
    records, rejections = parse_csv(CSV_HEADER.replace("\n", "\r\n") + "b1,Mira 1,12,2,5,2024-05-01T08:00,56.85,60.61")
    assert rejections == []
    assert records[0].fields["connected_at"] == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def test_csv_header_only_gives_nothing():
    assert parse_csv(CSV_HEADER) == ([], [])


# --------------------------------------------------------------------------- format detection

def test_format_is_sniffed_without_a_known_extension():
    geojson = b"  \n" + collection(feature())
    records, _ = parse_buildings(geojson, None, tz=TZ)
    assert records[0].label == "#1"
    records, _ = parse_buildings(geojson, "upload.txt", tz=TZ)
    assert records[0].label == "#1"
    csv_bytes = (CSV_HEADER + "b1,Mira 1,12,,,,56.85,60.61\n").encode()
    records, _ = parse_buildings(csv_bytes, None, tz=TZ)
    assert records[0].label == "line 2"
    records, _ = parse_buildings(b"\xef\xbb\xbf" + collection(feature()), "BUILDINGS.JSON", tz=TZ)
    assert records[0].label == "#1"


def test_extension_wins_over_content():
    with pytest.raises(FileUnreadable, match="not valid JSON"):
        parse_buildings((CSV_HEADER + "b1,Mira 1,12,,,,56.85,60.61\n").encode(), "b.geojson", tz=TZ)
    with pytest.raises(FileUnreadable, match="lacks the column"):
        parse_buildings(collection(feature()), "b.csv", tz=TZ)


def test_parse_buildings_json_takes_a_decoded_body():
    records, rejections = parse_buildings_json(
        {"type": "FeatureCollection", "features": [feature(), feature(props(external_id="x", apartments=0))]}, tz=TZ)
    assert [r.external_id for r in records] == ["b1"]
    assert [r.reason for r in rejections] == ["apartments must be at least 1, got 0"]
    with pytest.raises(FileUnreadable, match="not a GeoJSON FeatureCollection"):
        parse_buildings_json([feature()], tz=TZ)


# --------------------------------------------------------------------------- unreadable files

@pytest.mark.parametrize("data, filename, reason", [
    (b'{"type": "FeatureCollection", "features": [], "name": "\xff\xfe"}', "b.geojson",
     "the file is not UTF-8 text (invalid byte on line 1)"),
    ("external_id,address\nb1,Улица".encode("cp1251"), "b.csv", "the file is not UTF-8 text (invalid byte on line 2)"),
    (b"", "b.geojson", "the file is empty"),
    (b"  \n", None, "the file is empty"),
    (b"", "b.csv", "the file is empty"),
    (b'{"type": "FeatureCollection", "features": [', "b.geojson", "the file is not valid JSON: "),
    (b"[" * 100000, None, "the file is not valid JSON"),
    (b"[]", "b.json", "the file is not a GeoJSON FeatureCollection"),
    (b'"FeatureCollection"', "b.json", "the file is not a GeoJSON FeatureCollection"),
    (json.dumps(feature()).encode(), "b.json", "the file is not a GeoJSON FeatureCollection"),
    (b'{"type": "FeatureCollection"}', "b.json", "the FeatureCollection has no list of features"),
    (b'{"type": "FeatureCollection", "features": {}}', "b.json", "the FeatureCollection has no list of features"),
    (b'{"type": "FeatureCollection", "features": [], "crs": {"type": "name", "properties": '
     b'{"name": "urn:ogc:def:crs:EPSG::3857"}}}', "b.json",
     "coordinates must be WGS 84 longitude/latitude, the file declares urn:ogc:def:crs:EPSG::3857"),
    (b"\n", "b.csv", "the CSV file has no header line"),
    (b"b1,Mira 1,12,56.85,60.61\n", "b.csv",
     "the CSV header lacks the column(s) external_id, address, apartments, lat, lon"),
    (b"external_id;address;apartments;lat;lon\nb1;Mira;12;56.8;60.6\n", "b.csv",
     "the CSV file must be comma-separated, not semicolon-separated"),
    (b"external_id,address,apartments,lat,lon,Lat\n", "b.csv", "the CSV header names the column lat twice"),
])
def test_unreadable_files(data, filename, reason):
    with pytest.raises(FileUnreadable) as caught:
        parse_buildings(data, filename, tz=TZ)
    assert str(caught.value).startswith(reason)
    assert caught.value.message % caught.value.params == str(caught.value)


def test_wgs84_crs_declarations_are_accepted():
    for name in ("urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4326", "urn:ogc:def:crs:EPSG::4326"):
        obj = {"type": "FeatureCollection", "features": [feature()],
               "crs": {"type": "name", "properties": {"name": name}}}
        assert len(parse_buildings_json(obj, tz=TZ)[0]) == 1


@pytest.mark.parametrize("missing", ["external_id", "lat", "lon", "address", "apartments"])
def test_csv_missing_a_required_column_is_unreadable(missing):
    header = ",".join(c for c in ["external_id", "address", "apartments", "lat", "lon", "floors"] if c != missing)
    with pytest.raises(FileUnreadable) as caught:
        parse_csv(header + "\nb1,Mira 1,12,56.85,60.61\n")
    assert str(caught.value) == f"the CSV header lacks the column(s) {missing}"
    assert caught.value.message == "the CSV header lacks the column(s) %(columns)s"
    assert caught.value.params == {"columns": missing}


# --------------------------------------------------------------------------- polygons

def zone(name="Z1", territory="North", owner="agent1", geometry=SQUARE, kind="zone"):
    properties = {"kind": kind, "name": name, "territory": territory, "owner": owner}
    return {"type": "Feature", "geometry": geometry, "properties": {k: v for k, v in properties.items()
                                                                   if v is not _DROP}}


def territory(name="North", owner="sup1", geometry=SQUARE):
    return {"type": "Feature", "geometry": geometry, "properties": {"kind": "territory", "name": name,
                                                                    "owner": owner}}


def parse_poly(*features):
    return parse_polygons(collection(*features), "polygons.geojson")


def test_polygons_parsed():
    multi = {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    records, rejections = parse_poly(territory(), zone(kind=" Zone ", name=" Z1 ", owner=None),
                                     zone(name="Z2", geometry=multi, owner=""),
                                     territory(name="South", owner=None, geometry=BOWTIE))
    assert rejections == []
    assert all(isinstance(r, PolygonRecord) for r in records)
    assert [(r.index, r.label, r.kind, r.name, r.owner, r.territory) for r in records] == [
        (1, "#1", "territory", "North", "sup1", None),
        (2, "#2", "zone", "Z1", None, "North"),
        (3, "#3", "zone", "Z2", None, "North"),
        (4, "#4", "territory", "South", None, None),  # geometric validity is the services' job
    ]
    assert records[0].geometry == SQUARE
    assert records[2].geometry == multi


def test_territory_property_of_a_territory_is_ignored():
    feature_ = territory()
    feature_["properties"]["territory"] = "Elsewhere"
    records, _ = parse_poly(feature_)
    assert records[0].territory is None


POLYGON_REJECTIONS = [
    ("no kind", zone(kind=_DROP), "missing kind"),
    ("blank kind", zone(kind=" "), "missing kind"),
    ("wrong kind", zone(kind="region"), "kind must be territory or zone, got 'region'"),
    ("number kind", zone(kind=1), "kind must be territory or zone, got 1"),
    ("no name", zone(name=_DROP), "missing name"),
    ("blank name", zone(name=""), "missing name"),
    ("list name", zone(name=["Z"]), "name must be a string, got [\"Z\"]"),
    ("no geometry", zone(geometry=None), "no geometry"),
    ("point", zone(geometry=POINT), "geometry must be a Polygon or MultiPolygon, got Point"),
    ("text geometry", zone(geometry="POLYGON"), "geometry is not a GeoJSON object"),
    ("bad coordinates", zone(geometry={"type": "Polygon", "coordinates": [[["a", "b"]] * 4]}),
     "malformed coordinates"),
    ("empty", zone(geometry={"type": "Polygon", "coordinates": []}), "empty polygon"),
    ("out of range", zone(geometry={"type": "Polygon", "coordinates": [[[200, 1], [201, 1], [201, 2], [200, 1]]]}),
     "longitude 200 out of range"),
    ("no territory", zone(territory=_DROP), "zone without territory"),
    ("null territory", zone(territory=None), "zone without territory"),
    ("blank territory", zone(territory="  "), "zone without territory"),
    ("object territory", zone(territory={"name": "North"}), 'territory must be a string, got {"name": "North"}'),
    ("object owner", zone(owner=["agent1"]), 'owner must be a login, got ["agent1"]'),
    ("not a feature", 7, "feature is not a JSON object"),
]


@pytest.mark.parametrize("feature_, reason", [r[1:] for r in POLYGON_REJECTIONS],
                         ids=[r[0] for r in POLYGON_REJECTIONS])
def test_polygon_rejection(feature_, reason):
    records, rejections = parse_poly(feature_)
    assert records == []
    [rejection] = rejections
    assert (rejection.index, rejection.label, rejection.reason) == (1, "#1", reason)


def test_polygon_duplicates_are_per_kind():
    records, rejections = parse_poly(territory("North"), zone("North"), zone("Z1"), territory("North"),
                                     zone("Z1", territory="South"))
    assert [(r.kind, r.name) for r in records] == [("territory", "North"), ("zone", "North"), ("zone", "Z1")]
    assert [r.line("name") for r in rejections] == [
        "rejected #4 (name=North): duplicate territory name, first seen at #1",
        "rejected #5 (name=Z1): duplicate zone name, first seen at #3",
    ]


def test_polygon_line_names_the_polygon():
    _, rejections = parse_poly(territory(), zone("North-1", territory=None), zone("Z9", kind="area"))
    assert [r.line("name") for r in rejections] == [
        "rejected #2 (name=North-1): zone without territory",
        "rejected #3 (name=Z9): kind must be territory or zone, got 'area'",
    ]


def test_polygon_files_must_be_geojson():
    with pytest.raises(FileUnreadable, match="must be a GeoJSON FeatureCollection, not CSV"):
        parse_polygons(b"kind,name\nzone,Z1\n", "polygons.csv")
    with pytest.raises(FileUnreadable, match="must be a GeoJSON FeatureCollection, not CSV"):
        parse_polygons(b"kind,name\nzone,Z1\n")
    with pytest.raises(FileUnreadable, match="not a GeoJSON FeatureCollection"):
        parse_polygons(b'{"type": "Feature"}', "p.geojson")
    with pytest.raises(FileUnreadable, match="not UTF-8"):
        parse_polygons(b"\xff{}", "p.geojson")
    with pytest.raises(FileUnreadable, match="not a GeoJSON FeatureCollection"):
        parse_polygons_json({"features": []})


# --------------------------------------------------------------------------- purity

def test_module_is_pure():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "territories", "importfile.py")
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"flask", "flask_babel", "sqlalchemy", "flask_sqlalchemy", "crm", "territories"}



def test_csv_error_mid_file_is_unreadable_with_its_line():
    text = CSV_HEADER + "b1,Mira 1,12,,,,56.85,60.61\n" + "b2," + "x" * 200_000 + ",12,,,,56.85,60.61\n"
    with pytest.raises(FileUnreadable, match=r"^the CSV file cannot be read at line 3: field larger than field limit"):
        parse_csv(text)
