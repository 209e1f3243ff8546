"""Alerts: acknowledge or resolve open alerts with a note (operators and admins, recorded
with the signed-in username; viewers see the alerts only); the full history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common as c
from dashboard.alert_view import alert_action_form, show_alerts
from dashboard.audit_view import render_audit

user = c.page_setup("Alerts")
st.title("Alerts")
url = c.store_url()
sites = c.sites_or_stop(url, "No sites in the store yet, so no alerts.")

flash = st.session_state.pop("alerts_flash", None)
if flash:
    st.success(flash)

site_names = {int(i): n for i, n in zip(sites["site_id"], sites["name"], strict=True)}
scope = st.selectbox("Site", [0, *site_names], format_func=lambda i: site_names.get(i, "All sites"),
                     key="alerts_site")
alerts = c.load_alerts(url, scope or None, False)
if alerts.empty:
    st.success("No alerts have been raised"
               + (f" for {c.md(site_names[scope])}." if scope else "."))
    st.caption("Alerts are raised by the nightly job when crack growth passes a site's "
               "thresholds (`crackwatch demo` raises some on its demo site).")
    render_audit(url, scope, site_names)  # settings changes are audited too
    st.stop()

open_ = alerts[alerts["state"] != "resolved"]
st.subheader(f"Open alerts ({len(open_)})")
if open_.empty:
    st.success("Every alert is resolved.")
else:
    show_alerts(open_)

if not open_.empty:
    alert_action_form(url, user, open_)

st.subheader("History")
history = pd.DataFrame({
    "alert": alerts["alert_id"], "site": alerts["site_name"], "level": alerts["level"],
    "rule": alerts["rule"], "state": alerts["state"],
    "raised (UTC)": alerts["raised_at"].map(c.when),
    "acknowledged (UTC)": alerts["acknowledged_at"].map(c.when),
    "by": alerts["acknowledged_by"].fillna("-"),
    "acknowledge note": alerts["acknowledge_note"].fillna(""),
    "resolved (UTC)": alerts["resolved_at"].map(c.when),
    "resolve note": alerts["resolve_note"].fillna(""),
    "notifications": alerts["delivery"],
    "message": alerts["message"],
})
st.dataframe(c.level_style(history), hide_index=True, width="stretch")

# --- watch alerts and the audit trail (issue 16 part B) ---
if (alerts["state"] == "watch").any():
    st.caption("**watch**: a slope growth exceedance seen in one survey and not yet confirmed "
               "(needs the same crack in 2 consecutive surveys, or 2 cracks in one survey, "
               "after Intrieri et al. 2012). Nobody was notified; it becomes an alert when "
               "confirmed and is resolved automatically when the next survey does not "
               "confirm it.")
render_audit(url, scope, site_names)
