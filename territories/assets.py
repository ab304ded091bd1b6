"""Map assets served by the app itself, and folium maps that load nothing else.

The map pages work with no internet: every JS/CSS file they load comes from
``/vendor/<lib>/<path>`` on this app; the only outside address a page asks for is
the tile server (a setting: ``TILE_URL`` / ``TILE_ATTRIBUTION``). The files are
installed from package registries at setup and never committed:

=================  =====================================================  ==========================
``lib``            directory                                              installed by
=================  =====================================================  ==========================
``leaflet``        ``xstatic.pkg.leaflet.BASE_DIR``                       XStatic-Leaflet (PyPI)
``markercluster``  ``xstatic.pkg.leaflet_markercluster.BASE_DIR``         XStatic-Leaflet-MarkerCluster
``leaflet-draw``   ``<repo>/node_modules/leaflet-draw/dist``              leaflet-draw (npm, ``make assets``)
=================  =====================================================  ==========================

(``app.config["NODE_MODULES_DIR"]`` overrides ``<repo>/node_modules``.) An unknown
``lib`` or a missing file is a 404; ``send_from_directory`` refuses paths that
leave the directory. If ``node_modules`` is missing, ``leaflet-draw`` files are
404 and the error log says to run ``make assets``.

Caching: the URLs the helpers below build carry the library's version
(``?v=1.9.3``); such a request is cached for a year (``immutable``). Anything else
(the images a stylesheet refers to relatively, an old version's URL) is cached
for a day and revalidated with its ETag.

Building a map: ``offline_map``, ``offline_draw`` and ``offline_marker_cluster``
return ordinary folium objects whose ``default_js``/``default_css`` point only at
``/vendor/...``. folium's own defaults (Leaflet, jQuery, Bootstrap, Font Awesome,
Awesome Markers, all from CDNs) are replaced by Leaflet alone. By default the
URLs are built with ``url_for("assets.file", lib=…, path=…)`` (path-only, so the
blueprint must be registered and the helpers called inside a request, or an app
context with ``SERVER_NAME``); outside one pass ``prefix="/vendor"`` (or wherever
the blueprint is mounted) and the URLs are ``<prefix>/<lib>/<path>?v=…``::

    m = offline_map(current_app.config["TILE_URL"], current_app.config["TILE_ATTRIBUTION"],
                    location=[50.45, 30.52], zoom_start=13, prefer_canvas=True)
    cluster = offline_marker_cluster().add_to(m)
    offline_draw(draw_options={"polyline": False}).add_to(m)

Only add folium elements that bring no CDN links of their own: the offline
helpers here, or plain ones without ``default_js``/``default_css`` (GeoJson,
TileLayer, CircleMarker, Marker with the default icon, DivIcon, Tooltip,
FeatureGroup, LayerControl …). Two folium features need jQuery, which the
offline map does not load: ``folium.Popup`` (it builds its content with
``$(…)``) and ``keep_in_front``; ``folium.Icon`` needs Awesome Markers. Check a
page with ``external_urls(html)`` in a test.

Embedding in a Jinja page (instead of folium's full stand-alone document)::

    root = m.get_root()
    root.render()                    # renders every child; fills header/html/script
    header = root.header.render()    # <script>/<link> tags for /vendor/... plus the map's <style>
    html = root.html.render()        # the map's <div>
    script = root.script.render()    # the inline JS that builds the map

    {# in the template #}
    {% block head %}{{ header|safe }}{% endblock %}
    {% block content %}{{ html|safe }}<script>{{ script|safe }}</script>{% endblock %}

(``script`` is the bare JavaScript, without a ``<script>`` tag.) Note that
folium's Map header also carries page-wide bits meant for a stand-alone
document: a ``<meta name="viewport" … user-scalable=no>`` and ``html, body``
/ ``#map`` styles. A page that has its own viewport and layout either serves
the map as its own document (``root.render()``, e.g. in an ``<iframe>``) or
leaves those out of ``header``.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import TYPE_CHECKING

from urllib.parse import urlencode

import xstatic.pkg.leaflet as xs_leaflet
import xstatic.pkg.leaflet_markercluster as xs_markercluster
from flask import Blueprint, abort, current_app, has_app_context, request, send_from_directory, url_for

if TYPE_CHECKING:  # folium is imported lazily: it costs half a second at app start
    import folium
    from folium.plugins import Draw, MarkerCluster

log = logging.getLogger(__name__)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_MODULES = os.path.join(REPO_ROOT, "node_modules")
LONG_MAX_AGE = 365 * 24 * 3600   # versioned URLs: the bytes behind them never change
SHORT_MAX_AGE = 24 * 3600        # unversioned URLs (images a stylesheet refers to)

bp = Blueprint("assets", __name__, url_prefix="/vendor")


def _node_modules() -> str:
    if has_app_context():
        return current_app.config.get("NODE_MODULES_DIR") or NODE_MODULES
    return NODE_MODULES


def library_dirs() -> dict[str, str]:
    """``lib`` → the directory its files are served from."""
    return {
        "leaflet": xs_leaflet.BASE_DIR,
        "markercluster": xs_markercluster.BASE_DIR,
        "leaflet-draw": os.path.join(_node_modules(), "leaflet-draw", "dist"),
    }


def library_version(lib: str) -> str | None:
    """The installed version of ``lib`` (None when it is unknown or not installed)."""
    if lib == "leaflet":
        return xs_leaflet.VERSION
    if lib == "markercluster":
        return xs_markercluster.VERSION
    if lib == "leaflet-draw":
        try:
            with open(os.path.join(_node_modules(), "leaflet-draw", "package.json")) as fh:
                return json.load(fh).get("version")
        except (OSError, ValueError):
            return None
    return None


@bp.get("/<lib>/<path:path>", endpoint="file")
def serve_file(lib: str, path: str):
    directory = library_dirs().get(lib)
    if directory is None:
        abort(404)
    if not os.path.isdir(directory):
        log.error("map assets: %s is not installed (%s is missing); run `make assets` (npm ci) in %s",
                  lib, directory, REPO_ROOT)
        abort(404)
    version = request.args.get("v")
    versioned = version is not None and version == library_version(lib)
    response = send_from_directory(directory, path, max_age=LONG_MAX_AGE if versioned else SHORT_MAX_AGE)
    if versioned:
        response.cache_control.immutable = True
    return response


# --- folium maps that load only /vendor assets ---------------------------------------------------

def vendor_url(lib: str, path: str, prefix: str | None = None) -> str:
    """The URL of one vendored file, with the library's version for caching.

    ``prefix=None``: ``url_for('assets.file', …, _external=False)`` (needs a request,
    or an app context with ``SERVER_NAME`` set); otherwise ``<prefix>/<lib>/<path>?v=<version>``.
    """
    version = library_version(lib)
    query = {"v": version} if version else {}
    if prefix is None:
        return url_for("assets.file", lib=lib, path=path, _external=False, **query)
    url = f"{prefix.rstrip('/')}/{lib}/{path}"
    return f"{url}?{urlencode(query)}" if query else url


def offline_map(tiles_url: str, attribution: str, *, prefix: str | None = None,
                **map_kwargs) -> folium.Map:
    """A ``folium.Map`` that loads only Leaflet from ``/vendor`` and tiles from ``tiles_url``.

    ``map_kwargs`` go to ``folium.Map`` (``location``, ``zoom_start``, ``prefer_canvas``
    …); ``min_zoom``/``max_zoom`` go to the tile layer, as folium does. ``tiles`` and
    ``attr`` are not accepted: the tile layer is always ``tiles_url``.
    """
    import folium

    for taken in ("tiles", "attr"):
        if taken in map_kwargs:
            raise TypeError(f"offline_map() sets {taken!r} itself (from tiles_url/attribution)")
    tile_options = {key: map_kwargs.pop(key) for key in ("min_zoom", "max_zoom") if key in map_kwargs}
    m = folium.Map(tiles=None, **map_kwargs)
    # instance attributes: folium's class-level lists are shared (add_js_link mutates them)
    m.default_js = [("leaflet", vendor_url("leaflet", "leaflet.js", prefix))]
    m.default_css = [("leaflet_css", vendor_url("leaflet", "leaflet.css", prefix))]
    folium.TileLayer(tiles=tiles_url, attr=attribution, name="tiles", **tile_options).add_to(m)
    return m


def offline_draw(*, prefix: str | None = None, **kwargs) -> Draw:
    """``folium.plugins.Draw(**kwargs)`` loading leaflet-draw from ``/vendor/leaflet-draw``."""
    from folium.plugins import Draw

    draw = Draw(**kwargs)
    draw.default_js = [("leaflet_draw_js", vendor_url("leaflet-draw", "leaflet.draw.js", prefix))]
    draw.default_css = [("leaflet_draw_css", vendor_url("leaflet-draw", "leaflet.draw.css", prefix))]
    return draw


def offline_marker_cluster(*, prefix: str | None = None, **kwargs) -> MarkerCluster:
    """``folium.plugins.MarkerCluster(**kwargs)`` loading Leaflet.markercluster from ``/vendor``."""
    from folium.plugins import MarkerCluster

    cluster = MarkerCluster(**kwargs)
    cluster.default_js = [("markerclusterjs", vendor_url("markercluster", "leaflet.markercluster.js", prefix))]
    cluster.default_css = [
        ("markerclustercss", vendor_url("markercluster", "MarkerCluster.css", prefix)),
        ("markerclusterdefaultcss", vendor_url("markercluster", "MarkerCluster.Default.css", prefix)),
    ]
    return cluster


_ABSOLUTE = re.compile(r"""https?://[^\s"'`<>)\\]+""", re.IGNORECASE)
_PROTOCOL_RELATIVE = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?)(//[^\s"'`<>)\\]+)""", re.IGNORECASE)


def external_urls(html: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Absolute or protocol-relative URLs in ``html`` other than those in ``allowed``.

    A map page rendered from the helpers above should give ``[]`` with
    ``allowed=(TILE_URL,)``.
    """
    urls = [m.group(0) for m in _ABSOLUTE.finditer(html)] + [m.group(1) for m in _PROTOCOL_RELATIVE.finditer(html)]
    # a URL is cut at the first quote or backslash (tojson escapes "&" as \u0026), hence both ways
    return [url for url in urls if not any(url.startswith(a) or a.startswith(url) for a in allowed)]
