"""The map shell, built with folium: Leaflet, the tile layer, Leaflet.draw for editors.

folium renders the map and its controls; the data (polygons, tens of thousands of
buildings on a canvas) is loaded by ``static/js/map.js`` from the JSON endpoints, so
the page itself stays small and fast whatever the city's size. Everything the page
loads comes from the app (``/vendor``) except tiles (the ``TILE_URL`` setting).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from territories.assets import offline_draw, offline_map

# folium's stand-alone document bits that fight the app's own layout
_VIEWPORT = re.compile(r"<meta name=\"viewport\"[^>]*>", re.IGNORECASE)
_PAGE_STYLE = re.compile(r"<style>\s*html,\s*body\s*\{[^<]*</style>", re.IGNORECASE)
_MAP_STYLE = re.compile(r"<style>\s*#map[^<]*</style>", re.IGNORECASE)


@dataclass
class MapShell:
    header: str
    html: str
    script: str
    map_name: str
    drawn_name: str | None


def build(tiles_url: str, attribution: str, *, centre: tuple[float, float], zoom: int, editable: bool,
          draw_kinds: tuple[str, ...] = ("polygon", "rectangle")) -> MapShell:
    """A folium map with the tile layer and, for editors, Leaflet.draw over an editable layer."""
    import folium

    m = offline_map(tiles_url, attribution, location=list(centre), zoom_start=zoom, prefer_canvas=True,
                    control_scale=True, max_zoom=19)
    drawn_name = None
    if editable:
        drawn = folium.FeatureGroup(name="drawn", control=False).add_to(m)
        draw_options = {kind: False for kind in ("polyline", "polygon", "rectangle", "circle", "marker",
                                                 "circlemarker")}
        for kind in draw_kinds:
            draw_options[kind] = {"allowIntersection": False, "showArea": False} if kind == "polygon" else {}
        offline_draw(export=False, feature_group=drawn, show_geometry_on_click=False, position="topleft",
                     draw_options=draw_options, edit_options={"edit": True, "remove": False}).add_to(m)
        drawn_name = drawn.get_name()
    root = m.get_root()
    root.render()
    header = root.header.render()
    header = _MAP_STYLE.sub("", _PAGE_STYLE.sub("", _VIEWPORT.sub("", header)))
    return MapShell(header=header, html=root.html.render(), script=root.script.render(), map_name=m.get_name(),
                    drawn_name=drawn_name)
