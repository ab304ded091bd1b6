"""Parse uploaded building and polygon files into records and per-record rejections.

Pure: no Flask, no database, no translation machinery. Messages are English
msgid templates with ``%(name)s`` parameters, marked with :func:`N_` so they can
be extracted; whoever shows them translates ``message`` and fills in ``params``.

Formats (PRODUCT.md §5):

* buildings — a GeoJSON FeatureCollection (geometry Point, Polygon or
  MultiPolygon; a footprint's representative point is the location) or a CSV
  file (UTF-8, comma, optional BOM) with the same property names and ``lat`` /
  ``lon`` columns instead of geometry;
* polygons — a GeoJSON FeatureCollection of Polygon/MultiPolygon features with
  ``kind``, ``name``, ``owner`` and ``territory`` properties.

A file that cannot be read at all raises :class:`FileUnreadable`; a bad record
becomes a :class:`Rejection` (one per record: the first problem found) and the
other records are still returned.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo


@functools.cache
def _shapely():
    """shapely loads with the first footprint, not with the app (the start-up of every command)."""
    from shapely import polygons
    from shapely.errors import GEOSException
    from shapely.geometry import shape
    from shapely.validation import explain_validity

    return polygons, GEOSException, shape, explain_validity


def N_(s: str) -> str:
    """Mark a message for translation extraction; returns it unchanged."""
    return s


#: Limits that keep a record inside the database columns and the door grid sane.
MAX_EXTERNAL_ID = 100
MAX_ADDRESS = 300
MAX_APARTMENTS = 10_000
MAX_ENTRANCES = 100
MAX_FLOORS = 200

#: Columns a buildings CSV must have: without any of them no record could be valid.
CSV_REQUIRED_COLUMNS = ("external_id", "address", "apartments", "lat", "lon")

POLYGON_KINDS = ("territory", "zone")


class FileUnreadable(Exception):
    """The whole file cannot be read. ``str()`` is the English reason;
    ``message`` / ``params`` are the msgid template and its parameters."""

    def __init__(self, message: str, **params: Any) -> None:
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


@dataclass(frozen=True, slots=True)
class Rejection:
    #: GeoJSON: feature number counted from 1; CSV: line number, the header being line 1.
    index: int
    #: ``#7`` for GeoJSON, ``line 7`` for CSV.
    label: str
    #: The record's external_id (for polygons: its name) when it could be read.
    external_id: str | None
    #: English msgid template.
    message: str
    params: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The English reason."""
        return self.message % self.params if self.params else self.message

    def localized(self, gettext: Callable[[str], str]) -> str:
        """The reason in the language of ``gettext``."""
        text = gettext(self.message)
        return text % self.params if self.params else text

    def line(self, key: str = "external_id") -> str:
        """The CLI line: ``rejected #7 (external_id=bad-lat): latitude 160.17 out of range``."""
        shown = "" if self.external_id is None else self.external_id
        return f"rejected {self.label} ({key}={shown}): {self.reason}"


@dataclass(slots=True)
class BuildingRecord:
    index: int
    label: str
    external_id: str
    #: A Point's coordinates, or the footprint's representative point.
    lat: float
    lon: float
    #: The GeoJSON geometry (``type`` and ``coordinates``) when a footprint was given.
    footprint: dict | None
    #: Only the properties present in the record: address (str), apartments (int),
    #: entrances (int), floors (int, or None for an explicit JSON null),
    #: connected_at (aware UTC datetime).
    fields: dict


@dataclass(slots=True)
class PolygonRecord:
    index: int
    label: str
    kind: str  # "territory" | "zone"
    name: str
    owner: str | None
    territory: str | None  # a zone's territory name; None for a territory
    #: The GeoJSON geometry (Polygon/MultiPolygon); geometric validity is the services' job.
    geometry: dict


def report_lines(imported: int, updated: int, unchanged: int, rejections: list[Rejection],
                 key: str = "external_id") -> list[str]:
    """The import report of PRODUCT.md §5: the totals line, then one line per rejection."""
    lines = [f"imported {imported}, updated {updated}, unchanged {unchanged}, rejected {len(rejections)}"]
    lines.extend(r.line(key) for r in sorted(rejections, key=lambda r: r.index))
    return lines


# --------------------------------------------------------------------------- internals

class _Reject(Exception):
    """Raised by a check; becomes the record's Rejection."""

    def __init__(self, message: str, **params: Any) -> None:
        self.message = message
        self.params = params


_SHOW_MAX = 60


def _show(value: Any) -> str:
    """A value as the file gave it, for a message: strings quoted, JSON literals as JSON."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        if len(value) > _SHOW_MAX:
            value = value[:_SHOW_MAX] + "…"
        return repr(value)
    if type(value) is int or type(value) is float:
        return repr(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX] + "…"


def _show_number(value: Any) -> str:
    """A coordinate as given: the CSV text unquoted, a JSON number as Python prints it."""
    return value.strip() if type(value) is str else repr(value)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data[1:] if data.startswith("\ufeff") else data
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = bytes(data).count(b"\n", 0, exc.start) + 1
        raise FileUnreadable(N_("the file is not UTF-8 text (invalid byte on line %(line)s)"), line=line) from None


_FIRST_CHAR = re.compile(r"\S")


def _looks_like_json(text: str, filename: str | None) -> bool:
    """By the file name's extension, else by the first non-space character."""
    ext = os.path.splitext(filename or "")[1].lower()
    if ext == ".csv":
        return False
    if ext in (".json", ".geojson"):
        return True
    first = _FIRST_CHAR.search(text)
    if first is None:
        raise FileUnreadable(N_("the file is empty"))
    return first.group() in "{["


def _load_json(text: str) -> Any:
    if not text.strip():
        raise FileUnreadable(N_("the file is empty"))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileUnreadable(N_("the file is not valid JSON: %(detail)s"), detail=str(exc)) from None
    except RecursionError:
        raise FileUnreadable(N_("the file is not valid JSON: %(detail)s"), detail="nested too deeply") from None


_WGS84_CRS = ("CRS84", "EPSG:4326", "EPSG::4326", "EPSG:4979", "EPSG::4979")


def _features(obj: Any) -> list:
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise FileUnreadable(N_("the file is not a GeoJSON FeatureCollection"))
    features = obj.get("features")
    if not isinstance(features, list):
        raise FileUnreadable(N_("the FeatureCollection has no list of features"))
    crs = obj.get("crs")
    if isinstance(crs, dict):  # the 2008 GeoJSON "crs" member; RFC 7946 is always WGS 84 lon/lat
        props = crs.get("properties")
        name = props.get("name") if isinstance(props, dict) else None
        if isinstance(name, str) and not name.upper().endswith(_WGS84_CRS):
            raise FileUnreadable(N_("coordinates must be WGS 84 longitude/latitude, the file declares %(crs)s"),
                                 crs=name)
    return features


def _properties(feature: Any) -> dict:
    if not isinstance(feature, dict):
        raise _Reject(N_("feature is not a JSON object"))
    props = feature.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise _Reject(N_("properties is not a JSON object"))
    return props


def _identifier(props: dict, key: str, missing: str, wrong: str) -> str:
    """A required string identifier (an integer is accepted and turned into text)."""
    value = props.get(key)
    if value is None:
        raise _Reject(missing)
    kind = type(value)
    if kind is str:
        text = value.strip()
        if not text:
            raise _Reject(missing)
        return text
    if kind is int:
        return str(value)
    raise _Reject(wrong, value=_show(value))


def _check_lat_lon(lat: Any, lon: Any, raw_lat: Any, raw_lon: Any, malformed: Callable[[str], _Reject]) -> None:
    if not -90.0 <= lat <= 90.0:
        if type(lat) is float and not math.isfinite(lat):
            raise malformed("lat")
        raise _Reject(N_("latitude %(value)s out of range"), value=_show_number(raw_lat))
    if not -180.0 <= lon <= 180.0:
        if type(lon) is float and not math.isfinite(lon):
            raise malformed("lon")
        raise _Reject(N_("longitude %(value)s out of range"), value=_show_number(raw_lon))


def _malformed_coordinates(_which: str) -> _Reject:
    return _Reject(N_("malformed coordinates"))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _check_polygon_coordinates(gtype: str, coordinates: Any, empty: str) -> None:
    """Structure and ranges of a Polygon / MultiPolygon's coordinates (not its geometric
    validity): rings of at least 4 positions of 2 or 3 numbers, all of one dimension."""
    if type(coordinates) is not list:
        raise _Reject(N_("malformed coordinates"))
    if not coordinates:
        raise _Reject(empty)
    polygons = (coordinates,) if gtype == "Polygon" else coordinates
    dimension = None
    for polygon in polygons:
        if type(polygon) is not list or not polygon:
            raise _Reject(N_("malformed coordinates"))
        for ring in polygon:
            if type(ring) is not list:
                raise _Reject(N_("malformed coordinates"))
            if len(ring) < 4:
                raise _Reject(N_("a polygon ring needs at least 4 positions, got %(count)s"), count=len(ring))
            if dimension is None:
                dimension = len(ring[0]) if type(ring[0]) is list else 0
                if dimension != 2 and dimension != 3:
                    raise _Reject(N_("malformed coordinates"))
            for position in ring:
                if type(position) is not list or len(position) != dimension:
                    raise _Reject(N_("malformed coordinates"))
                lon = position[0]
                lat = position[1]
                if (not (type(lon) is float or type(lon) is int) or not (type(lat) is float or type(lat) is int)
                        or (dimension == 3 and not _is_number(position[2]))):
                    raise _Reject(N_("malformed coordinates"))
                if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                    _check_lat_lon(lat, lon, lat, lon, _malformed_coordinates)


def _geometry_type(geometry: Any) -> str:
    if geometry is None:
        raise _Reject(N_("no geometry"))
    if not isinstance(geometry, dict):
        raise _Reject(N_("geometry is not a GeoJSON object"))
    gtype = geometry.get("type")
    return gtype if type(gtype) is str else _show(gtype)


def _geojson_location(geometry: Any) -> tuple[float, float, dict | None]:
    """(lat, lon, footprint) of a building feature's geometry."""
    gtype = _geometry_type(geometry)
    coordinates = geometry.get("coordinates")
    if gtype == "Point":
        if type(coordinates) is not list or len(coordinates) < 2:
            raise _Reject(N_("malformed coordinates"))
        lon, lat = coordinates[0], coordinates[1]
        if not (_is_number(lon) and _is_number(lat)):
            raise _Reject(N_("malformed coordinates"))
        _check_lat_lon(lat, lon, lat, lon, _malformed_coordinates)
        return float(lat), float(lon), None
    if gtype == "Polygon" or gtype == "MultiPolygon":
        _shapely_polygons, GEOSException, shape, explain_validity = _shapely()
        _check_polygon_coordinates(gtype, coordinates, N_("empty footprint polygon"))
        footprint = {"type": gtype, "coordinates": coordinates}
        try:  # the common one-ring footprint skips shape()'s generic path
            if gtype == "Polygon" and len(coordinates) == 1:
                polygon = _shapely_polygons(coordinates[0])
            else:
                polygon = shape(footprint)
        except (ValueError, TypeError, IndexError, GEOSException) as exc:
            raise _Reject(N_("invalid footprint polygon: %(detail)s"), detail=str(exc)) from None
        if polygon.is_empty:
            raise _Reject(N_("empty footprint polygon"))
        if not polygon.is_valid:
            raise _Reject(N_("invalid footprint polygon: %(detail)s"), detail=explain_validity(polygon))
        point = polygon.representative_point()
        return point.y, point.x, footprint
    raise _Reject(N_("unsupported geometry type %(type)s"), type=gtype)


def _csv_coordinate(props: dict, column: str) -> float:
    text = props[column]
    try:
        value = float(text)
    except ValueError:
        raise _Reject(N_("%(column)s must be a number, got %(value)s"), column=column, value=_show(text)) from None
    if "_" in text:  # float() accepts "1_0"; a file does not mean that
        raise _Reject(N_("%(column)s must be a number, got %(value)s"), column=column, value=_show(text))
    return value


def _csv_location(props: dict) -> tuple[float, float, None]:
    if "lat" not in props or "lon" not in props:
        raise _Reject(N_("missing lat or lon"))
    lat = _csv_coordinate(props, "lat")
    lon = _csv_coordinate(props, "lon")

    def malformed(column: str) -> _Reject:
        return _Reject(N_("%(column)s must be a number, got %(value)s"), column=column, value=_show(props[column]))

    _check_lat_lon(lat, lon, props["lat"], props["lon"], malformed)
    return lat, lon, None


def _blank(value: Any) -> bool:
    return value is None or (type(value) is str and (not value or value.isspace()))


def _whole(name: str, value: Any, maximum: int) -> int:
    """An integer 1..maximum: a JSON integer, an integral JSON float (12.0) or the text of one."""
    kind = type(value)
    if kind is int:
        number = value
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            try:
                real = float(value)
            except ValueError:
                real = math.nan
            if not real.is_integer():
                raise _Reject(N_("%(field)s must be a whole number, got %(value)s"), field=name,
                              value=_show(value)) from None
            number = int(real)
        if "_" in value:
            raise _Reject(N_("%(field)s must be a whole number, got %(value)s"), field=name, value=_show(value))
    elif kind is float and value.is_integer():
        number = int(value)
    else:  # booleans, fractions, lists, objects
        raise _Reject(N_("%(field)s must be a whole number, got %(value)s"), field=name, value=_show(value))
    if number < 1:
        raise _Reject(N_("%(field)s must be at least 1, got %(value)s"), field=name, value=number)
    if number > maximum:
        raise _Reject(N_("%(field)s must be at most %(max)s, got %(value)s"), field=name, max=maximum,
                      value=number)
    return number


def _moment(value: Any, tz: ZoneInfo, cache: dict) -> datetime:
    """An ISO date (midnight in ``tz``) or datetime (naive: in ``tz``) as an aware UTC datetime."""
    if type(value) is str:
        hit = cache.get(value)
        if hit is not None:
            return hit
        try:
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            moment = moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            pass
        else:
            cache[value] = moment
            return moment
    raise _Reject(N_("connected_at must be an ISO date or datetime, got %(value)s"), value=_show(value))


_ABSENT = object()


def _building_fields(props: dict, tz: ZoneInfo, cache: dict) -> dict:
    """address, apartments, entrances, floors, connected_at — only those present.

    Each property has a fast path for the common well-formed value; anything
    else goes through the general checks."""
    get = props.get
    address = get("address")
    if type(address) is str:
        address = address.strip()
        if not address:
            raise _Reject(N_("missing address"))
    elif address is None:
        raise _Reject(N_("missing address"))
    else:
        raise _Reject(N_("address must be text, got %(value)s"), value=_show(address))
    if len(address) > MAX_ADDRESS:
        raise _Reject(N_("address is longer than %(max)s characters"), max=MAX_ADDRESS)

    apartments = get("apartments")
    if type(apartments) is not int or not 0 < apartments <= MAX_APARTMENTS:
        if _blank(apartments):
            raise _Reject(N_("missing apartments"))
        apartments = _whole("apartments", apartments, MAX_APARTMENTS)
    fields = {"address": address, "apartments": apartments}

    entrances = get("entrances")
    if entrances is not None:
        if type(entrances) is not int or not 0 < entrances <= MAX_ENTRANCES:
            entrances = None if _blank(entrances) else _whole("entrances", entrances, MAX_ENTRANCES)
        if entrances is not None:
            if entrances > apartments:
                raise _Reject(N_("more entrances (%(entrances)s) than apartments (%(apartments)s)"),
                              entrances=entrances, apartments=apartments)
            fields["entrances"] = entrances

    floors = get("floors", _ABSENT)
    if floors is not _ABSENT:
        if floors is None:  # an explicit JSON null: the building has no floor count
            fields["floors"] = None
        elif type(floors) is int and 0 < floors <= MAX_FLOORS:
            fields["floors"] = floors
        elif not _blank(floors):
            fields["floors"] = _whole("floors", floors, MAX_FLOORS)

    connected_at = get("connected_at")
    if connected_at is not None:
        moment = cache.get(connected_at) if type(connected_at) is str else None
        if moment is None and not _blank(connected_at):
            moment = _moment(connected_at, tz, cache)
        if moment is not None:
            fields["connected_at"] = moment
    return fields


# --------------------------------------------------------------------------- buildings

def parse_buildings(data: bytes, filename: str | None = None, *,
                    tz: ZoneInfo) -> tuple[list[BuildingRecord], list[Rejection]]:
    """Parse a buildings file (GeoJSON or CSV, told apart by ``filename``'s extension,
    else by its first character). Raises :class:`FileUnreadable`."""
    text = _decode(data)
    if _looks_like_json(text, filename):
        return parse_buildings_json(_load_json(text), tz=tz)
    return _parse_buildings_csv(text, tz)


def parse_buildings_json(obj: Any, *, tz: ZoneInfo) -> tuple[list[BuildingRecord], list[Rejection]]:
    """Parse an already decoded GeoJSON FeatureCollection (the HTTP API's body)."""
    features = _features(obj)
    records: list[BuildingRecord] = []
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    cache: dict = {}
    for index, feature in enumerate(features, 1):
        label = f"#{index}"
        external_id = None
        try:
            if type(feature) is not dict or type(props := feature.get("properties")) is not dict:
                props = _properties(feature)
            external_id = props.get("external_id")
            if type(external_id) is str:
                external_id = external_id.strip() or None
            if type(external_id) is not str:
                external_id = None
                external_id = _identifier(props, "external_id", N_("missing external_id"),
                                          N_("external_id must be a string, got %(value)s"))
            _claim(seen, external_id, label)
            # fast path: a well-formed Point with float coordinates in range
            geometry = feature.get("geometry")
            if (type(geometry) is dict and geometry.get("type") == "Point"
                    and type(coordinates := geometry.get("coordinates")) is list and len(coordinates) >= 2
                    and type(lon := coordinates[0]) is float and type(lat := coordinates[1]) is float
                    and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                footprint = None
            else:
                lat, lon, footprint = _geojson_location(geometry)
            fields = _building_fields(props, tz, cache)
        except _Reject as problem:
            rejections.append(Rejection(index, label, external_id, problem.message, problem.params))
            continue
        records.append(BuildingRecord(index, label, external_id, lat, lon, footprint, fields))
    return records, rejections


def _claim(seen: dict, external_id: str, label: str) -> None:
    """An id may appear once per file: the first occurrence claims it, even if rejected for another reason."""
    if len(external_id) > MAX_EXTERNAL_ID:
        raise _Reject(N_("external_id is longer than %(max)s characters"), max=MAX_EXTERNAL_ID)
    first = seen.get(external_id)
    if first is not None:
        raise _Reject(N_("duplicate external_id, first seen at %(first)s"), first=first)
    seen[external_id] = label


def _csv_reader(text: str) -> tuple[Any, list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise FileUnreadable(N_("the file is empty")) from None
    except csv.Error as exc:
        raise FileUnreadable(N_("the CSV file cannot be read at line %(line)s: %(detail)s"),
                             line=reader.line_num, detail=str(exc)) from None
    columns = [name.strip().lower() for name in header]
    if not any(columns):
        raise FileUnreadable(N_("the CSV file has no header line"))
    if len(columns) == 1 and ";" in columns[0]:
        raise FileUnreadable(N_("the CSV file must be comma-separated, not semicolon-separated"))
    named = [name for name in columns if name]
    for name in named:
        if named.count(name) > 1:
            raise FileUnreadable(N_("the CSV header names the column %(column)s twice"), column=name)
    lacking = [name for name in CSV_REQUIRED_COLUMNS if name not in columns]
    if lacking:
        raise FileUnreadable(N_("the CSV header lacks the column(s) %(columns)s"), columns=", ".join(lacking))
    return reader, columns


def _parse_buildings_csv(text: str, tz: ZoneInfo) -> tuple[list[BuildingRecord], list[Rejection]]:
    reader, columns = _csv_reader(text)
    width = len(columns)
    records: list[BuildingRecord] = []
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    cache: dict = {}
    previous = reader.line_num
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise FileUnreadable(N_("the CSV file cannot be read at line %(line)s: %(detail)s"),
                                 line=previous + 1, detail=str(exc)) from None
        line, previous = previous + 1, reader.line_num
        # an empty cell is an absent property
        props = {name: cell for name, cell in zip(columns, row) if cell and not cell.isspace()}
        extra = len(row) > width and any(cell and not cell.isspace() for cell in row[width:])
        if not props and not extra:
            continue  # a blank line, or only commas
        label = f"line {line}"
        external_id = None
        try:
            external_id = _identifier(props, "external_id", N_("missing external_id"),
                                      N_("external_id must be a string, got %(value)s"))
            if extra:
                raise _Reject(N_("the line has %(count)s values but the header has %(columns)s columns"),
                              count=len(row), columns=width)
            _claim(seen, external_id, label)
            lat, lon, footprint = _csv_location(props)
            fields = _building_fields(props, tz, cache)
        except _Reject as problem:
            rejections.append(Rejection(line, label, external_id, problem.message, problem.params))
            continue
        records.append(BuildingRecord(line, label, external_id, lat, lon, footprint, fields))
    return records, rejections


# --------------------------------------------------------------------------- polygons

def parse_polygons(data: bytes, filename: str | None = None) -> tuple[list[PolygonRecord], list[Rejection]]:
    """Parse a polygons file (GeoJSON only). Raises :class:`FileUnreadable`."""
    text = _decode(data)
    if not _looks_like_json(text, filename):
        raise FileUnreadable(N_("a polygon file must be a GeoJSON FeatureCollection, not CSV"))
    return parse_polygons_json(_load_json(text))


def _optional_name(props: dict, key: str, wrong: str) -> str | None:
    value = props.get(key)
    if _blank(value):
        return None
    if type(value) is int:
        return str(value)
    if type(value) is not str:
        raise _Reject(wrong, value=_show(value))
    return value.strip()


def parse_polygons_json(obj: Any) -> tuple[list[PolygonRecord], list[Rejection]]:
    """Parse an already decoded GeoJSON FeatureCollection of territories and zones."""
    features = _features(obj)
    records: list[PolygonRecord] = []
    rejections: list[Rejection] = []
    seen: dict[tuple[str, str], str] = {}
    for index, feature in enumerate(features, 1):
        label = f"#{index}"
        name = None
        try:
            props = _properties(feature)
            if type(props.get("name")) is str and props["name"].strip():
                name = props["name"].strip()  # shown in the line even when the kind is wrong
            kind = props.get("kind")
            if _blank(kind):
                raise _Reject(N_("missing kind"))
            if type(kind) is not str or kind.strip().lower() not in POLYGON_KINDS:
                raise _Reject(N_("kind must be territory or zone, got %(value)s"), value=_show(kind))
            kind = kind.strip().lower()
            name = _identifier(props, "name", N_("missing name"), N_("name must be a string, got %(value)s"))
            first = seen.get((kind, name))
            if first is not None:
                raise _Reject(N_("duplicate %(kind)s name, first seen at %(first)s"), kind=kind, first=first)
            seen[(kind, name)] = label
            geometry = feature.get("geometry")
            gtype = _geometry_type(geometry)
            if gtype != "Polygon" and gtype != "MultiPolygon":
                raise _Reject(N_("geometry must be a Polygon or MultiPolygon, got %(type)s"), type=gtype)
            coordinates = geometry.get("coordinates")
            _check_polygon_coordinates(gtype, coordinates, N_("empty polygon"))
            territory = None
            if kind == "zone":
                territory = _optional_name(props, "territory", N_("territory must be a string, got %(value)s"))
                if territory is None:
                    raise _Reject(N_("zone without territory"))
            owner = _optional_name(props, "owner", N_("owner must be a login, got %(value)s"))
        except _Reject as problem:
            rejections.append(Rejection(index, label, name, problem.message, problem.params))
            continue
        records.append(PolygonRecord(index, label, kind, name, owner, territory,
                                     {"type": gtype, "coordinates": coordinates}))
    return records, rejections
