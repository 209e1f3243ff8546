"""CrackWatch Streamlit dashboard: ``crackwatch dashboard`` runs ``dashboard/app.py``.

``app.py`` (Overview) and ``pages/`` are thin Streamlit scripts; :mod:`dashboard.common`
holds the cached loaders (reads through :mod:`geodata.queries` only), :mod:`dashboard.maps`
the offline folium maps, :mod:`dashboard.imagery` the imagery overviews and crack chips.
"""
