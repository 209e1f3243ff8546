"""Alerts: acknowledge or resolve open alerts with a note (operators and admins, recorded
with the signed-in username; viewers see the alerts only); the full history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common as c
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
    view = c.alerts_table(open_)
    st.dataframe(c.level_style(view), hide_index=True, width="stretch")

    labels = {int(r.alert_id): f"#{r.alert_id} {r.level.upper()} {r.site_name}: {r.rule} "
                               f"({r.state})" for r in open_.itertuples()}
if not open_.empty and not user.can_act:
    st.info(f"You are signed in as {c.md(user.username)} ({user.role}): acknowledging and "
            f"resolving alerts needs the operator or admin role. Ask an admin "
            f"(`crackwatch user add NAME --role operator`).")
elif not open_.empty:
    if st.session_state.pop("alerts_clear_note", False):
        st.session_state.pop("alert_note", None)  # after a save: an empty note for the next
    # Not clear_on_submit: a failed save must keep the alert, the action and the note that
    # were chosen (issue 28: it reset to the first alert, and the next Save acted on that).
    with st.form("alert_action"):
        st.markdown("**Acknowledge or resolve an alert**")
        alert_id = st.selectbox("Alert", list(labels), format_func=labels.get,
                                key="alert_pick")
        action = st.radio("Action", ["Acknowledge", "Resolve"], horizontal=True,
                          key="alert_action_kind",
                          help="Acknowledge: seen, stays open. Resolve: dealt with, closes "
                               "it (a note is required).")
        st.caption(f"Recorded as {c.md(user.username)}.")
        note = st.text_area("Note", key="alert_note",
                            placeholder="what you saw, checked or did")
        submitted = st.form_submit_button("Save")
        outcome = st.empty()  # the save's error shows here, at the form, not below the fold
    if submitted:
        fn = c.acknowledge if action == "Acknowledge" else c.resolve
        error = fn(url, int(alert_id), user.username, note)
        if error:
            outcome.error(f"Alert #{alert_id} was not changed: {c.md(error)}")
        else:
            st.session_state["alerts_flash"] = (
                f"Alert #{alert_id} {'acknowledged' if action == 'Acknowledge' else 'resolved'}.")
            st.session_state["alerts_clear_note"] = True
            st.rerun()

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
