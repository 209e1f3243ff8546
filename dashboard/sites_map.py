"""The Overview's map of every site (issue 28, item 1): an offline basemap of land and
borders, sites coloured by alert level with the worst drawn on top, nearby sites clustered
under the colour of their worst member, and zoom limits fit for a map of sites.

Everything is local: Leaflet, Leaflet.markercluster and the basemap are vendored under
``dashboard/static/vendor`` (see its README) and served by Streamlit's static file serving or
inlined into the map document, like :mod:`dashboard.maps`. The basemap is Natural Earth 1:50m
land and country borders (public domain, as packed by the npm package ``world-atlas``): about
1 km accurate, so the map stops at zoom 12 (the site's own survey imagery on the Site page is
the detailed layer).
"""

from __future__ import annotations

import html as html_lib
import json
from functools import lru_cache
from typing import Any

import folium
import pandas as pd
from branca.element import Element, MacroElement
from jinja2 import Template

from dashboard.maps import (
    LEVEL_COLOURS,
    VENDOR_DIR,
    WATCH_COLOUR,
    MapAssets,
    _fit,
    _legend,
    _new_map,
    _short,
)
from geodata.levels import level_rank

__all__ = ["MAX_ZOOM", "MIN_ZOOM", "sites_map"]

#: Zoom limits of the sites map: the world (2) down to about a town (12, ~40 m per pixel);
#: the 1:50m basemap has nothing to show below that (issue 28: the wheel went to a 1 m scale).
MIN_ZOOM, MAX_ZOOM = 2, 12
#: Sites closer than this on screen (px) are drawn as one cluster.
CLUSTER_RADIUS_PX = 40
WATER, LAND, BORDER = "#aad3df", "#f4f1ea", "#9e9e9e"  # OpenStreetMap-like
_CLUSTER = "leaflet.markercluster"
_BASEMAP = "natural-earth/basemap-50m.js"


@lru_cache(maxsize=1)
def _inline_assets() -> str:
    folder = VENDOR_DIR / _CLUSTER
    css = "".join((folder / f).read_text(encoding="utf-8")
                  for f in ("MarkerCluster.css", "MarkerCluster.Default.css"))
    js = (folder / "leaflet.markercluster.js").read_text(encoding="utf-8").replace(
        "//# sourceMappingURL=leaflet.markercluster.js.map", "")
    basemap = (VENDOR_DIR / _BASEMAP).read_text(encoding="utf-8")
    return f"<style>{css}</style>\n<script>{js}</script>\n<script>{basemap}</script>"


def _add_assets(m: folium.Map, assets: MapAssets) -> None:
    if assets.mode == "static":
        base = f"{assets.static_prefix}vendor/"
        tags = (f'<link rel="stylesheet" href="{base}{_CLUSTER}/MarkerCluster.css">'
                f'<link rel="stylesheet" href="{base}{_CLUSTER}/MarkerCluster.Default.css">'
                f'<script src="{base}{_CLUSTER}/leaflet.markercluster.js"></script>'
                f'<script src="{base}{_BASEMAP}"></script>')
    else:
        tags = _inline_assets()
    # in the body, after the header's Leaflet (folium adds its own assets to the header at
    # render time, after anything added here): the plugin needs L when it runs
    m.get_root().html.add_child(Element(tags), name="cw_sites_assets")
    m.get_root().header.add_child(Element(
        "<style>.cw-site { width: 18px; height: 18px; border-radius: 50%; "
        "border: 2px solid #222; box-sizing: border-box; }"
        ".cw-site.cw-watch { box-shadow: 0 0 0 3px #fff, 0 0 0 6px " + WATCH_COLOUR + "; }"
        ".cw-cluster { width: 34px; height: 34px; border-radius: 50%; border: 2px solid #222; "
        "color: #fff; font: bold 13px/30px sans-serif; text-align: center; "
        "box-sizing: border-box; text-shadow: 0 0 2px #000; }</style>"),
        name="cw_sites_style")


class _SitesLayer(MacroElement):
    """The basemap and the clustered site markers, in the map's own script."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
          var map = {{ this._parent.get_name() }};
          if (window.CW_BASEMAP) {
            L.geoJSON(window.CW_BASEMAP, {interactive: false, style: function (f) {
              return f.properties.layer === "land"
                ? {stroke: false, fillColor: {{ this.land }}, fillOpacity: 1}
                : {color: {{ this.border }}, weight: 1, fill: false};
            }}).addTo(map);
          }
          var sites = {{ this.data }};
          var group = L.markerClusterGroup ? L.markerClusterGroup({
            maxClusterRadius: {{ this.radius }}, showCoverageOnHover: false,
            disableClusteringAtZoom: {{ this.max_zoom }},
            iconCreateFunction: function (cluster) {
              var worst = null;
              cluster.getAllChildMarkers().forEach(function (m) {
                if (worst === null || m.options.cwRank > worst.cwRank) { worst = m.options; }
              });
              return L.divIcon({className: "", iconSize: [34, 34],
                html: '<div class="cw-cluster" style="background:' + worst.cwColour + '"'
                      + ' title="' + cluster.getChildCount() + ' sites, worst ' + worst.cwLevel
                      + '">' + cluster.getChildCount() + '</div>'});
            }}) : L.featureGroup();
          sites.forEach(function (s) {
            var marker = L.marker([s.lat, s.lon], {
              cwRank: s.rank, cwColour: s.colour, cwLevel: s.level,
              zIndexOffset: 1000 * s.rank, riseOnHover: true,
              icon: L.divIcon({className: "", iconSize: [18, 18],
                html: '<div class="cw-site' + (s.watch ? ' cw-watch' : '') + '"'
                      + ' data-level="' + s.level + '" style="background:' + s.colour
                      + '"></div>'})});
            marker.bindTooltip(s.label, {permanent: true, direction: "right",
                                         offset: [10, 0]});
            marker.bindPopup(s.popup, {maxWidth: 280});
            group.addLayer(marker);
          });
          group.addTo(map);
        })();
        {% endmacro %}
    """)

    def __init__(self, data: list[dict[str, Any]]) -> None:
        super().__init__()
        self._name = "SitesLayer"
        # JSON in a <script>: "</" never ends it
        self.data = json.dumps(data).replace("</", "<\\/")
        self.land, self.border = json.dumps(LAND), json.dumps(BORDER)
        self.radius = CLUSTER_RADIUS_PX
        self.max_zoom = MAX_ZOOM  # at the closest zoom every site is its own marker


def _popup(row: Any, colour: str) -> str:
    text = (f"<b>{html_lib.escape(str(row.name))}</b><br>"
            f"profile: {html_lib.escape(str(row.profile))}<br>"
            f"alert level: <b style='color:{colour}'>{html_lib.escape(str(row.alert_level))}"
            f"</b> ({row.open_alerts} open)<br>surveys: {row.survey_count}<br>"
            f"cracks in latest survey: "
            f"{'-' if pd.isna(row.latest_crack_count) else int(row.latest_crack_count)}")
    watch = int(getattr(row, "watch_alerts", 0) or 0)
    if watch:
        text += (f"<br><b style='color:{WATCH_COLOUR}'>watch</b>: {watch} unconfirmed "
                 f"exceedance(s) up to {html_lib.escape(str(row.watch_level))}, no "
                 f"notification")
    return text


def sites_map(sites: pd.DataFrame, *, assets: MapAssets, basemap: bool = False
              ) -> folium.Map:
    """All sites as markers coloured by their current alert level, over an offline basemap.

    The worst level is drawn on top (the data are ordered worst last and each marker's
    z-index rises with its level); sites closer than :data:`CLUSTER_RADIUS_PX` on screen are
    one cluster, coloured by its worst site and showing how many it holds; a dashed ring
    (here: a purple halo) marks unconfirmed slope exceedances (watch).

    Args:
        sites: :func:`geodata.queries.sites_overview` rows (sites without lon/lat are left
            out; the caller lists them).
        assets: where Leaflet and the vendored layers come from.
        basemap: also the online OpenStreetMap tiles (needs internet).
    """
    m = _new_map(assets, basemap=basemap, background=WATER)
    m.options["minZoom"], m.options["maxZoom"] = MIN_ZOOM, MAX_ZOOM
    m.options["maxBounds"] = [[-85, -200], [85, 200]]
    _add_assets(m, assets)
    placed = sites.dropna(subset=["lon", "lat"])
    rank = [(level_rank(lv), int(w or 0)) for lv, w in zip(
        placed["alert_level"], placed.get("watch_alerts", pd.Series(0, index=placed.index)),
        strict=True)]
    placed = placed.iloc[sorted(range(len(placed)), key=rank.__getitem__)]
    data = []
    for row in placed.itertuples(index=False):
        colour = LEVEL_COLOURS.get(row.alert_level, "#607d8b")
        watch = int(getattr(row, "watch_alerts", 0) or 0)
        data.append({"lat": float(row.lat), "lon": float(row.lon), "colour": colour,
                     "level": html_lib.escape(str(row.alert_level)),
                     "rank": 2 * level_rank(row.alert_level) + (1 if watch else 0),
                     "watch": bool(watch), "label": html_lib.escape(_short(str(row.name))),
                     "popup": _popup(row, colour)})
    m.add_child(_SitesLayer(data))
    _legend(m, "alert level", [*[(lvl, c) for lvl, c in LEVEL_COLOURS.items()],
                               ("watch (unconfirmed)", WATCH_COLOUR)])
    _fit(m, [(r["lat"], r["lon"], r["lat"], r["lon"]) for r in data])
    return m
