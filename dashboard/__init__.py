"""CrackWatch Streamlit dashboard (not built yet: see the dashboard issue)."""
