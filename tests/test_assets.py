"""Map assets are served by the app (/vendor) and folium maps load nothing else but tiles."""
from __future__ import annotations

import logging
import posixpath
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import folium
import pytest
from flask import Flask

from territories import assets
from territories.assets import bp, external_urls, offline_draw, offline_map, offline_marker_cluster

TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
ATTRIBUTION = "© OpenStreetMap contributors"

MAIN_FILES = [
    ("leaflet", "leaflet.js", "javascript"),
    ("leaflet", "leaflet.css", "text/css"),
    ("markercluster", "leaflet.markercluster.js", "javascript"),
    ("markercluster", "MarkerCluster.css", "text/css"),
    ("markercluster", "MarkerCluster.Default.css", "text/css"),
    ("leaflet-draw", "leaflet.draw.js", "javascript"),
    ("leaflet-draw", "leaflet.draw.css", "text/css"),
    ("leaflet", "images/marker-icon.png", "image/png"),
    ("leaflet-draw", "images/spritesheet.svg", "image/svg+xml"),
]


@pytest.fixture
def vendor_app():
    """A bare app with only the assets blueprint: these tests do not depend on app.py."""
    app = Flask(__name__)
    app.config["TESTING"] = True
    app.register_blueprint(bp)
    return app


@pytest.fixture
def vendor_client(vendor_app):
    return vendor_app.test_client()


@pytest.mark.parametrize("lib,path,content_type", MAIN_FILES)
def test_library_files_are_served(vendor_client, lib, path, content_type):
    response = vendor_client.get(f"/vendor/{lib}/{path}")
    assert response.status_code == 200, (lib, path)
    assert content_type in response.content_type
    assert len(response.data) > 100


def test_versioned_urls_are_cached_for_a_year_others_for_a_day(vendor_app, vendor_client):
    with vendor_app.test_request_context():
        url = assets.vendor_url("leaflet", "leaflet.js")
    assert url == "/vendor/leaflet/leaflet.js?v=" + assets.library_version("leaflet")
    versioned = vendor_client.get(url)
    assert versioned.cache_control.max_age == 365 * 24 * 3600
    assert versioned.cache_control.immutable
    assert versioned.cache_control.public
    plain = vendor_client.get("/vendor/leaflet/leaflet.js")
    assert plain.cache_control.max_age == 24 * 3600
    assert not plain.cache_control.immutable
    stale = vendor_client.get("/vendor/leaflet/leaflet.js?v=0.0.1")
    assert stale.cache_control.max_age == 24 * 3600
    assert vendor_client.get(url, headers={"If-None-Match": versioned.headers["ETag"]}).status_code == 304


@pytest.mark.parametrize("url", [
    "/vendor/jquery/jquery.js",
    "/vendor/leaflet/no-such-file.js",
    "/vendor/leaflet/",
    "/vendor/",
])
def test_unknown_library_or_file_is_404(vendor_client, url):
    assert vendor_client.get(url).status_code == 404


@pytest.mark.parametrize("url", [
    "/vendor/leaflet/../__init__.py",
    "/vendor/leaflet/../../leaflet/__init__.py",
    "/vendor/leaflet/%2e%2e/__init__.py",
    "/vendor/leaflet/..%2f__init__.py",
    "/vendor/leaflet-draw/../package.json",
    "/vendor/leaflet-draw/..%2F..%2F..%2Fpyproject.toml",
    "/vendor/markercluster/../../../../../../etc/passwd",
    "/vendor/leaflet//etc/passwd",
    "/vendor/leaflet/images/../../../leaflet/__init__.py",
])
def test_path_traversal_is_404(vendor_client, url):
    response = vendor_client.get(url, follow_redirects=True)  # "//" is first merged by a redirect
    assert response.status_code == 404, url


def test_missing_node_modules_is_404_and_logged(vendor_app, vendor_client, tmp_path, caplog):
    vendor_app.config["NODE_MODULES_DIR"] = str(tmp_path / "node_modules")
    with caplog.at_level(logging.ERROR, logger="territories.assets"):
        assert vendor_client.get("/vendor/leaflet-draw/leaflet.draw.js").status_code == 404
    assert "leaflet-draw is not installed" in caplog.text
    assert "make assets" in caplog.text
    assert vendor_client.get("/vendor/leaflet/leaflet.js").status_code == 200  # the PyPI ones are unaffected
    with vendor_app.test_request_context():
        assert offline_draw().default_js == [("leaflet_draw_js", "/vendor/leaflet-draw/leaflet.draw.js")]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href"):
                self.links.append((tag, name, value))


def _links(html: str) -> list[tuple[str, str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def _full_map() -> folium.Map:
    m = offline_map(TILES, ATTRIBUTION, location=[50.45, 30.52], zoom_start=13, prefer_canvas=True)
    offline_draw().add_to(m)
    cluster = offline_marker_cluster().add_to(m)
    folium.Marker([50.45, 30.52], tooltip="building").add_to(cluster)
    folium.CircleMarker([50.46, 30.53], radius=4).add_to(m)
    folium.GeoJson({"type": "Feature", "properties": {},
                    "geometry": {"type": "Point", "coordinates": [30.5, 50.4]}}).add_to(m)
    return m


def test_offline_map_loads_only_vendor_assets_and_tiles(vendor_app, vendor_client):
    with vendor_app.test_request_context():
        m = _full_map()
        root = m.get_root()
        html = root.render()
        header = root.header.render()

    links = _links(html)
    assert links, "the map loads its scripts and stylesheets"
    assert all(value.startswith("/vendor/") for _, _, value in links), links
    assert external_urls(html, allowed=(TILES,)) == []
    assert all(url.startswith(TILES) for url in re.findall(r"https?://[^\s\"'<>]+", html))
    assert TILES in html and "\\u00a9 OpenStreetMap contributors" in html  # tojson escapes "©"
    for cdn in ("jquery", "bootstrap", "awesome", "fontawesome", "glyphicons", "cdn"):
        assert cdn not in html.lower(), cdn

    loaded = sorted(value for tag, _, value in _links(header) if tag in ("script", "link"))
    assert [urlsplit(u).path for u in loaded] == sorted([
        "/vendor/leaflet/leaflet.js",
        "/vendor/leaflet/leaflet.css",
        "/vendor/leaflet-draw/leaflet.draw.js",
        "/vendor/leaflet-draw/leaflet.draw.css",
        "/vendor/markercluster/leaflet.markercluster.js",
        "/vendor/markercluster/MarkerCluster.css",
        "/vendor/markercluster/MarkerCluster.Default.css",
    ])
    for url in loaded:
        response = vendor_client.get(url)
        assert response.status_code == 200, url
        assert response.cache_control.immutable, url


def test_images_the_stylesheets_refer_to_are_served(vendor_app, vendor_client):
    with vendor_app.test_request_context():
        m = _full_map()
        header = (m.get_root().render(), m.get_root().header.render())[1]
    stylesheets = [value for tag, _, value in _links(header) if tag == "link"]
    referenced = set()
    for sheet in stylesheets:
        css = vendor_client.get(sheet).get_data(as_text=True)
        base = posixpath.dirname(urlsplit(sheet).path)
        for ref in re.findall(r"""url\(\s*['"]?([^'")]+)""", css):
            if ref.startswith(("#", "data:")):
                continue
            assert not ref.startswith(("http:", "https:", "//")), (sheet, ref)
            referenced.add(posixpath.normpath(posixpath.join(base, ref)))
    assert "/vendor/leaflet/images/layers.png" in referenced
    assert "/vendor/leaflet-draw/images/spritesheet.svg" in referenced
    for url in sorted(referenced):
        assert vendor_client.get(url).status_code == 200, url


def test_prefix_builds_the_same_urls_without_a_request(vendor_app):
    m = offline_map(TILES, ATTRIBUTION, prefix="/vendor")
    offline_draw(prefix="/vendor").add_to(m)
    offline_marker_cluster(prefix="/vendor/").add_to(m)
    outside = _links(m.get_root().render())
    with vendor_app.test_request_context():
        m2 = offline_map(TILES, ATTRIBUTION)
        offline_draw().add_to(m2)
        offline_marker_cluster().add_to(m2)
        inside = _links(m2.get_root().render())
    assert outside == inside


def test_folium_defaults_are_left_alone(vendor_app):
    """The offline objects replace their own lists; folium's shared class lists stay as they are."""
    before = (list(folium.Map.default_js), list(folium.plugins.Draw.default_js),
              list(folium.plugins.MarkerCluster.default_css))
    with vendor_app.test_request_context():
        m = offline_map(TILES, ATTRIBUTION)
        m.add_js_link("extra", "/vendor/leaflet/leaflet-src.js")
    assert (folium.Map.default_js, folium.plugins.Draw.default_js, folium.plugins.MarkerCluster.default_css) == before


def test_tiles_come_only_from_the_arguments(vendor_app):
    with vendor_app.test_request_context():
        with pytest.raises(TypeError):
            offline_map(TILES, ATTRIBUTION, tiles="OpenStreetMap")
        m = offline_map("/tiles/{z}/{x}/{y}.png", "own tiles", min_zoom=3, max_zoom=19)
        html = m.get_root().render()
    assert '"/tiles/{z}/{x}/{y}.png"' in html
    assert '"maxZoom": 19' in html and '"minZoom": 3' in html
    assert external_urls(html) == []


def test_external_urls_finds_absolute_and_protocol_relative_links():
    html = ('<script src="//cdn.example/x.js"></script><link href="https://cdn.example/y.css">'
            '<script>// a comment\nL.tileLayer("https://t.example/{z}/{x}/{y}.png?k=1\\u0026s=2")</script>')
    assert external_urls(html, allowed=("https://t.example/{z}/{x}/{y}.png?k=1&s=2",)) == [
        "https://cdn.example/y.css", "//cdn.example/x.js"]
