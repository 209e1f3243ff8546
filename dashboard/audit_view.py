"""The Audit view of the Alerts page: who did what to which alert or setting, and when.

Reads :func:`geodata.audit.audit_events` through :func:`dashboard.common.load_audit`; every
cell is shown as text in a data frame (nothing is rendered as Markdown or HTML).
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import common as c

#: Filter choices: label -> action prefix (None: every action).
GROUPS = {"Everything": None, "Alert state changes": "alert.",
          "Notifications": "notification.", "Setting changes": "site."}


def _details_text(d: dict) -> str:
    return json.dumps(d, sort_keys=True, default=str, ensure_ascii=False) if d else ""


def render_audit(url: str, site_id: int | None, site_names: dict[int, str]) -> None:
    """The audit section: a filter, the newest entries and a CSV download of what is shown."""
    st.subheader("Audit trail")
    st.caption("Every alert state change, escalation, notification and setting change, with "
               "who (a person, `system` or `scheduler`) and when (UTC). Export it all with "
               "`crackwatch export --layer audit --format csv --out audit.csv`.")
    events = c.load_audit(url, site_id or None)
    if events.empty:
        st.info("Nothing recorded yet" + (f" for {site_names.get(site_id, '')}." if site_id
                                          else "."))
        return
    cols = st.columns([2, 2, 1])
    group = cols[0].selectbox("Show", list(GROUPS), key="audit_group")
    actors = sorted(events["actor"].dropna().unique())
    who = cols[1].selectbox("Actor", ["Anyone", *actors], key="audit_actor")
    alert = cols[2].number_input("Alert #", min_value=0, value=0, step=1, key="audit_alert",
                                 help="0: every alert")
    prefix = GROUPS[group]
    shown = events
    if prefix:
        shown = shown[shown["action"].str.startswith(prefix)]
    if who != "Anyone":
        shown = shown[shown["actor"] == who]
    if alert:
        shown = shown[shown["alert_id"] == int(alert)]
    table = pd.DataFrame({
        "when (UTC)": shown["at"].map(c.when), "actor": shown["actor"],
        "action": shown["action"], "site": shown["site_name"].fillna("-"),
        "alert": shown["alert_id"].astype("string").fillna("-"),
        "notification": shown["notification_id"].astype("string").fillna("-"),
        "details": shown["details"].map(_details_text),
    })
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"{len(table)} of the newest {len(events)} entries.")
    st.download_button("Download these entries (CSV)", table.to_csv(index=False),
                       file_name="crackwatch-audit.csv", mime="text/csv",
                       key="audit_download")
