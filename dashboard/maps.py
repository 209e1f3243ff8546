"""Folium maps that draw with no internet: sites by alert level, and a survey's cracks.

folium's default template loads Leaflet, jQuery, Bootstrap, Font Awesome and
Leaflet.awesome-markers from public CDNs. The dashboard's maps only need Leaflet, which is
vendored in ``dashboard/static/vendor/leaflet`` (see the README there), so every map built
here drops folium's CDN assets and references the local copy instead:

* ``mode="static"``: ``<script src="/app/static/vendor/leaflet/leaflet.js">``, served by
  Streamlit's static file serving (``server.enableStaticServing``; ``crackwatch dashboard``
  turns it on). The browser caches it across reruns.
* ``mode="inline"``: the script and stylesheet (its images as data URIs) are inlined into
  the map HTML, for a Streamlit started without static serving.

No basemap is loaded unless asked for (``basemap=True``: OpenStreetMap tiles, which need
internet). The survey's own imagery is an ``ImageOverlay`` whose PNG is a data URI (see
:mod:`dashboard.imagery`). :func:`external_resources` lists every non-local resource a
rendered map would fetch, for tests.

This module does not import streamlit; pages render the HTML with ``st.iframe``.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import folium
from branca.element import Element, MacroElement
from jinja2 import Template

from geodata.levels import LEVEL_COLOURS  # marker colour per alert level

__all__ = [
    "LEAFLET_VERSION",
    "LEVEL_COLOURS",
    "SEVERITY_COLOURS",
    "VENDOR_DIR",
    "MapAssets",
    "external_resources",
    "inline_leaflet",
    "render_html",
    "survey_map",
]

LEAFLET_VERSION = "1.9.4"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"

#: Ring colour of a site with watch alerts (unconfirmed slope exceedances).
WATCH_COLOUR = "#6a1b9a"
#: Crack outline colours by BRE Digest 251 severity (see geodata.store.SEVERITY_CLASSES).
SEVERITY_COLOURS = {"negligible": "#00e5ff", "very slight": "#76ff03", "slight": "#ffea00",
                    "moderate": "#ff9100", "severe": "#ff1744", "very severe": "#d500f9",
                    "unresolved": "#9e9e9e"}
_UNKNOWN_COLOUR = "#ffffff"

#: Above this many cracks Leaflet draws on a canvas instead of one SVG path per crack.
CANVAS_THRESHOLD = 3000

_OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
_OSM_ATTR = "&copy; OpenStreetMap contributors"


@dataclass(frozen=True)
class MapAssets:
    """Where a map's Leaflet comes from: ``"static"`` (served under ``static_prefix``, e.g.
    ``/app/static/``) or ``"inline"`` (embedded in the HTML)."""

    mode: str = "inline"
    static_prefix: str = "/app/static/"

    def __post_init__(self) -> None:
        if self.mode not in ("static", "inline"):
            raise ValueError(f"mode must be 'static' or 'inline', got {self.mode!r}")
        if self.mode == "static" and not (self.static_prefix.startswith("/")
                                          and self.static_prefix.endswith("/")):
            raise ValueError(f"static_prefix must be a local path like '/app/static/', got "
                             f"{self.static_prefix!r}")


@lru_cache(maxsize=1)
def inline_leaflet() -> str:
    """Leaflet's CSS (images as data URIs) and JS as one ``<style>`` + ``<script>`` block."""
    folder = VENDOR_DIR / "leaflet"
    try:
        css = (folder / "leaflet.css").read_text(encoding="utf-8")
        js = (folder / "leaflet.js").read_text(encoding="utf-8")
    except OSError as exc:
        raise FileNotFoundError(
            f"the vendored Leaflet is missing from {folder} ({exc}); reinstall crackwatch "
            f"(the files ship as package data) or restore dashboard/static/vendor") from exc

    def data_uri(match: re.Match[str]) -> str:
        png = folder / match.group(1)
        return f"url(data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", data_uri, css)
    js = js.replace("//# sourceMappingURL=leaflet.js.map", "")
    return f"<style>{css}</style>\n<script>{js}</script>"


def _new_map(assets: MapAssets, *, basemap: bool, prefer_canvas: bool = False,
             background: str = "#dfe3e8") -> folium.Map:
    """A folium map without CDN assets (and without tiles unless ``basemap``)."""
    m = folium.Map(location=[0, 0], zoom_start=2, tiles=None, prefer_canvas=prefer_canvas,
                   control_scale=True)
    if assets.mode == "static":
        base = f"{assets.static_prefix}vendor/leaflet/"
        m.default_js = [("leaflet", base + "leaflet.js")]
        m.default_css = [("leaflet_css", base + "leaflet.css")]
    else:
        m.default_js = []
        m.default_css = []
        m.get_root().header.add_child(Element(inline_leaflet()), name="leaflet_inline")
    m.get_root().header.add_child(Element(
        f"<style>.folium-map.leaflet-container {{ background: {background} !important; }}"
        ".cw-legend { position: absolute; z-index: 1000; bottom: 26px; right: 10px; "
        "background: rgba(255,255,255,.92); padding: 6px 9px; border-radius: 4px; "
        "font: 12px/1.5 sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.3); }"
        ".cw-legend i { display: inline-block; width: 12px; height: 12px; margin-right: 5px;"
        " vertical-align: -2px; border: 1px solid #555; }</style>"), name="cw_style")
    if basemap:
        folium.TileLayer(_OSM_URL, attr=_OSM_ATTR, name="OpenStreetMap (online)",
                         max_zoom=19).add_to(m)
    return m


class _Popup(MacroElement):
    """``layer.bindPopup(html)`` with a plain string: folium's ``Popup`` builds its content
    with jQuery (``$(...)``), which these maps do not load."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.bindPopup({{ this.content }}, {{ this.options }});
        {% endmacro %}
    """)

    def __init__(self, html: str, max_width: int = 300) -> None:
        super().__init__()
        self._name = "Popup"
        self.content = json.dumps(html).replace("</", "<\\/")  # never ends the <script>
        self.options = json.dumps({"maxWidth": max_width})


def _legend(m: folium.Map, title: str, items: Iterable[tuple[str, str]]) -> None:
    rows = "".join(f"<div><i style='background:{c}'></i>{html_lib.escape(label)}</div>"
                   for label, c in items)
    m.get_root().html.add_child(Element(
        f"<div class='cw-legend'><b>{html_lib.escape(title)}</b>{rows}</div>"))


def _fit(m: folium.Map, bounds: list[tuple[float, float, float, float]]) -> None:
    """Fit the map to the union of ``(south, west, north, east)`` boxes (if any)."""
    good = [b for b in bounds if all(math.isfinite(v) for v in b)]
    if not good:
        return
    s, w = min(b[0] for b in good), min(b[1] for b in good)
    n, e = max(b[2] for b in good), max(b[3] for b in good)
    if n - s < 1e-6 and e - w < 1e-6:  # one point: pad so Leaflet can zoom sensibly
        s, w, n, e = s - 0.002, w - 0.002, n + 0.002, e + 0.002
    m.fit_bounds([[s, w], [n, e]], padding=(20, 20))


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "\u2026"


def _fc_bounds(fc: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """``(south, west, north, east)`` of a GeoJSON FeatureCollection, or None if empty."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for part in c:
                walk(part)

    for f in fc.get("features", []):
        if f.get("geometry"):
            walk(f["geometry"]["coordinates"])
    if not xs:
        return None
    return min(ys), min(xs), max(ys), max(xs)


#: Legend text and colour of the unsupervised surface-change layer (never a crack).
SURFACE_CHANGE = "surface change (unsupervised)"
SURFACE_CHANGE_COLOUR = "#2979ff"  # blue: no severity colour
#: Legend text and colour of the not-observable ground (vegetation) layer.
NOT_OBSERVABLE = "not observable (vegetation): no crack data"
NOT_OBSERVABLE_COLOUR = "#607d8b"


# long-function: one folium map, layer by layer (imagery, footprint, not observable, cracks).
def survey_map(
    cracks: Mapping[str, Any],
    *,
    assets: MapAssets,
    overlay: tuple[str, tuple[float, float, float, float]] | None = None,
    footprint: Mapping[str, Any] | None = None,
    basemap: bool = False,
    highlight_crack_id: int | None = None,
    popup_fields: list[tuple[str, str]] | None = None,
    unobservable: Mapping[str, Any] | None = None,
    surface_change: Mapping[str, Any] | None = None,
) -> folium.Map:
    """One survey's crack polygons over the survey's own imagery.

    Args:
        cracks: GeoJSON FeatureCollection in EPSG:4326 (as
            :func:`geodata.queries.survey_cracks_geojson` returns, with extra properties);
            features are coloured by their ``severity`` property.
        overlay: ``(image URL or data URI, (south, west, north, east))`` of the imagery
            overview (Web Mercator pixel grid, see :mod:`dashboard.imagery`).
        footprint: GeoJSON geometry (EPSG:4326) of the survey's footprint, drawn dashed.
        basemap: add OpenStreetMap tiles (online only; off by default).
        highlight_crack_id: outline this crack thicker.
        popup_fields: ``(property, label)`` pairs shown in a crack's popup.
        unobservable: GeoJSON geometry (EPSG:4326) of the ground the run could not see
            (vegetation on a slope, :mod:`engine.observable`), drawn hatched grey as
            "not observable": no crack there means nothing, not "no crack".
        surface_change: GeoJSON geometry (EPSG:4326) of the ground that changed since the
            site baseline (:mod:`jobs.site_baseline`), drawn as its own blue dashed layer
            "surface change (unsupervised)", under the cracks and never coloured like one.
    """
    n = len(cracks.get("features", []))
    m = _new_map(assets, basemap=basemap, prefer_canvas=n > CANVAS_THRESHOLD)
    bounds = []
    if overlay is not None:
        url, (s, w, no, e) = overlay
        folium.raster_layers.ImageOverlay(url, bounds=[[s, w], [no, e]], name="survey imagery",
                                          opacity=1.0, pixelated=False).add_to(m)
        bounds.append((s, w, no, e))
    if footprint is not None:
        folium.GeoJson({"type": "Feature", "properties": {}, "geometry": footprint},
                       name="survey footprint",
                       style_function=lambda _f: {"color": "#37474f", "weight": 2,
                                                  "dashArray": "6 4", "fill": False}
                       ).add_to(m)
        fb = _fc_bounds({"features": [{"geometry": footprint}]})
        if fb:
            bounds.append(fb)
    if unobservable is not None:
        folium.GeoJson({"type": "Feature", "properties": {"what": NOT_OBSERVABLE},
                        "geometry": unobservable},
                       name="not observable (vegetation)",
                       style_function=lambda _f: {"color": NOT_OBSERVABLE_COLOUR, "weight": 1,
                                                  "opacity": 0.8,
                                                  "fillColor": NOT_OBSERVABLE_COLOUR,
                                                  "fillOpacity": 0.45},
                       tooltip=folium.GeoJsonTooltip(fields=["what"], labels=False),
                       ).add_to(m)
    if surface_change is not None:
        folium.GeoJson({"type": "Feature", "properties": {"what": SURFACE_CHANGE},
                        "geometry": surface_change},
                       name=SURFACE_CHANGE,
                       style_function=lambda _f: {"color": SURFACE_CHANGE_COLOUR, "weight": 2,
                                                  "opacity": 0.9, "dashArray": "4 3",
                                                  "fillColor": SURFACE_CHANGE_COLOUR,
                                                  "fillOpacity": 0.15},
                       tooltip=folium.GeoJsonTooltip(fields=["what"], labels=False),
                       ).add_to(m)
    if n:
        fields = popup_fields or [("crack_id", "crack")]

        def style(feature: Mapping[str, Any]) -> dict[str, Any]:
            props = feature["properties"]
            colour = SEVERITY_COLOURS.get(props.get("severity"), _UNKNOWN_COLOUR)
            hit = highlight_crack_id is not None and props.get("crack_id") == highlight_crack_id
            return {"color": "#ffffff" if hit else colour, "weight": 6 if hit else 3,
                    "opacity": 0.95, "fillColor": colour, "fillOpacity": 0.6}

        folium.GeoJson(
            dict(cracks), name=f"cracks ({n})", style_function=style,
            popup=folium.GeoJsonPopup(fields=[f for f, _ in fields],
                                      aliases=[a for _, a in fields], localize=False,
                                      labels=True),
            # hover tooltips cost a Leaflet object per crack: only for smaller surveys
            tooltip=(folium.GeoJsonTooltip(fields=["crack_id", "severity"],
                                           aliases=["crack", "severity"])
                     if n <= CANVAS_THRESHOLD else None),
        ).add_to(m)
        cb = _fc_bounds(cracks)
        if cb:
            bounds.append(cb)
    _legend(m, "crack severity (BRE 251)", list(SEVERITY_COLOURS.items())
            + ([(NOT_OBSERVABLE, NOT_OBSERVABLE_COLOUR)] if unobservable is not None else [])
            + ([(SURFACE_CHANGE, SURFACE_CHANGE_COLOUR)] if surface_change is not None
               else []))
    folium.LayerControl(collapsed=True).add_to(m)
    _fit(m, bounds)
    return m


def render_html(m: folium.Map) -> str:
    """The map as a standalone HTML document (what ``st.iframe`` shows)."""
    return m.get_root().render()


_RESOURCE_RES = (
    re.compile(r"""<script[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.I),
    re.compile(r"""<link[^>]*\bhref\s*=\s*["']([^"']+)["']""", re.I),
    re.compile(r"""<img[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.I),
    re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", re.I),
    re.compile(r"""@import\s+["']([^"']+)["']""", re.I),
    re.compile(r"""L\.tileLayer\(\s*["']([^"']+)["']"""),
    re.compile(r"""L\.imageOverlay\(\s*["']([^"']+)["']"""),
)
_LOCAL = re.compile(r"^(?:/(?!/)|data:|#|\.{1,2}/|[\w.-]+(?:/|$)|"
                    r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::\d+)?(?:/|$))", re.I)


def external_resources(html: str) -> list[str]:
    """Every resource a map HTML would load from outside this machine (should be empty).

    Looks at ``<script src>``, ``<link href>``, ``<img src>``, CSS ``url()`` /
    ``@import``, and Leaflet tile/image layer URLs; local paths, ``data:`` URIs and
    ``http(s)://localhost`` are fine. Script text is not a resource (Leaflet's own source
    mentions leafletjs.com in its attribution link).
    """
    found = []
    for rx in _RESOURCE_RES:
        for url in rx.findall(html):
            if not _LOCAL.match(url.strip()):
                found.append(url)
    return sorted(set(found))
