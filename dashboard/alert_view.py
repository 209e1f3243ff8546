"""Alerts on the dashboard: the open-alert table with a link from each alert to its crack,
the alerts' messages, and the acknowledge / resolve form, shared by the Overview, the Alerts
page and the Site page opened on an alerting crack (issue 28: "an alert opens its crack ...
acknowledge or resolve right there, showing who and when"). Acting is for operators and
admins only and is recorded with the signed-in username.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common as c
from geodata.levels import level_rank

#: Column widths (px) that keep the open-alert table inside a 1440 px wide window with the
#: sidebar open (issue 28, item 5); the message, forecast and notifications follow the table
#: in full (:func:`show_alerts`).
ALERT_COLUMN_WIDTHS = {"alert": 45, "level": 60, "site": 110, "crack": 75, "rule": 125,
                       "measured": 90, "threshold": 85, "state": 90,
                       "acknowledged by": 115, "raised (UTC)": 120}


def alerts_table(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alert rows (of :func:`dashboard.common.load_alerts`) for display, key columns only:
    ``crack`` is the Site page link that opens the alert on its crack (:func:`alert_link`)."""
    return pd.DataFrame({
        "alert": alerts["alert_id"], "level": alerts["level"], "site": alerts["site_name"],
        "crack": [alert_link(r) for r in alerts.itertuples()],
        "rule": alerts["rule"],
        "measured": [c.with_unit(v, u) for v, u in zip(alerts["measured_value"],
                                                       alerts["unit"], strict=True)],
        "threshold": [c.with_unit(v, u) for v, u in zip(alerts["threshold"], alerts["unit"],
                                                        strict=True)],
        "state": alerts["state"],
        "acknowledged by": alerts["acknowledged_by"].fillna("-"),
        "raised (UTC)": alerts["raised_at"].map(c.when),
    })


def crack_name(track_id: Any, crack_id: Any = None) -> str:
    """The one name of a crack on every page: its track (``"track 37"``), the identity that
    survives from survey to survey; an untracked crack by its id in its survey
    (``"crack #123"``); ``"site"`` for a site-wide alert (neither)."""
    if track_id is not None and not pd.isna(track_id):
        return f"track {int(track_id)}"
    if crack_id is not None and not pd.isna(crack_id):
        return f"crack #{int(crack_id)}"
    return "site"


def show_alerts(alerts: pd.DataFrame, details_limit: int = 10) -> None:
    """The open-alert table (:func:`alerts_table`, level-coloured, each alert's crack one
    click away) and under it each alert's message, forecast and notifications in full."""
    table = alerts_table(alerts)
    config: dict[str, Any] = {k: st.column_config.Column(width=w)
                              for k, w in ALERT_COLUMN_WIDTHS.items() if k != "crack"}
    config["crack"] = st.column_config.LinkColumn(
        "crack", width=ALERT_COLUMN_WIDTHS["crack"], display_text=r"crack=([^&]+)$",
        help="Opens the Site page on the alert's crack and survey (site: site-wide alert)")
    st.dataframe(c.level_style(table), hide_index=True, width="stretch",
                 column_config=config)
    lines = []
    for r in alerts.itertuples():
        extra = [f"forecast: {r.forecast}"] if isinstance(r.forecast, str) and r.forecast \
            else []
        if r.delivery:
            extra.append(f"notifications: {r.delivery}")
        name = crack_name(r.track_id)
        where = "" if name in str(r.message) else f" ({name})"
        lines.append(f"**#{r.alert_id}**{where} {c.md(r.message)}"
                     + "".join(f"; {c.md(e)}" for e in extra))
    shown, rest = lines[:details_limit], lines[details_limit:]
    st.markdown("\n".join(f"- {x}" for x in shown))
    if rest:
        with st.expander(f"{len(rest)} more alert messages"):
            st.markdown("\n".join(f"- {x}" for x in rest))


def alert_label(r: Any) -> str:
    """``"#5 ORANGE Demo slope: slope.opening_rate on crack track 37 (open)"``."""
    track = "" if pd.isna(r.track_id) else f" on crack track {int(r.track_id)}"
    return f"#{r.alert_id} {r.level.upper()} {r.site_name}: {r.rule}{track} ({r.state})"


def alert_action_form(url: str, user: Any, open_alerts: pd.DataFrame, key: str = "alert",
                      flash_key: str = "alerts_flash") -> None:
    """The form for ``open_alerts`` (rows of :func:`dashboard.common.load_alerts`), or why
    the signed-in ``user`` may not act. Widget keys ``{key}_pick``, ``{key}_action_kind``,
    ``{key}_note``. After a save the page reruns with a message in
    ``st.session_state[flash_key]`` (the caller shows it); a failed save keeps the chosen
    alert, action and note and shows its error at the form (issue 28, item 2: the form reset
    to the first alert and the next Save acted on that).
    """
    if open_alerts.empty:
        return
    if not user.can_act:
        st.info(f"You are signed in as {c.md(user.username)} ({user.role}): acknowledging and "
                f"resolving alerts needs the operator or admin role. Ask an admin "
                f"(`crackwatch user add NAME --role operator`).")
        return
    labels = {int(r.alert_id): alert_label(r) for r in open_alerts.itertuples()}
    if st.session_state.pop(f"{key}_clear_note", False):
        st.session_state.pop(f"{key}_note", None)  # after a save: an empty note for the next
    with st.form(f"{key}_action"):
        st.markdown("**Acknowledge or resolve an alert**")
        alert_id = st.selectbox("Alert", list(labels), format_func=labels.get,
                                key=f"{key}_pick")
        action = st.radio("Action", ["Acknowledge", "Resolve"], horizontal=True,
                          key=f"{key}_action_kind",
                          help="Acknowledge: seen, stays open. Resolve: dealt with, closes "
                               "it (a note is required).")
        st.caption(f"Recorded as {c.md(user.username)}.")
        note = st.text_area("Note", key=f"{key}_note",
                            placeholder="what you saw, checked or did")
        submitted = st.form_submit_button("Save")
        outcome = st.empty()  # the save's error shows here, at the form, not below the fold
    if submitted:
        fn = c.acknowledge if action == "Acknowledge" else c.resolve
        error = fn(url, int(alert_id), user.username, note)
        if error:
            outcome.error(f"Alert #{alert_id} was not changed: {c.md(error)}")
        else:
            st.session_state[flash_key] = (
                f"Alert #{alert_id} {'acknowledged' if action == 'Acknowledge' else 'resolved'}."
                f" Recorded as {user.username}.")
            st.session_state[f"{key}_clear_note"] = True
            st.rerun()


def alert_link(r: Any) -> str:
    """The Site page URL that opens alert row ``r`` on its crack and survey
    (``Site?site=3&survey=12&track=37&alert=5&crack=track+37``; no track for a site-wide
    alert). The last parameter is what the link shows (:func:`crack_name`), read by the
    table's ``display_text`` pattern; the Site page ignores it."""
    parts = [f"site={int(r.site_id)}"]
    if not pd.isna(r.survey_id):
        parts.append(f"survey={int(r.survey_id)}")
    if not pd.isna(r.track_id):
        parts.append(f"track={int(r.track_id)}")
    parts.append(f"alert={int(r.alert_id)}")
    parts.append("crack=" + crack_name(r.track_id).replace(" ", "+"))
    return "Site?" + "&".join(parts)


def rule_chart_of(alerts: pd.DataFrame) -> dict[str, Any] | None:
    """The chart (series and threshold lines, ``details["chart"]``) of the most severe
    unresolved alert among ``alerts`` that has one, else of the newest one; None if none
    does (site-wide rules, alerts raised before charts were recorded)."""
    with_chart = alerts[alerts["chart"].map(lambda x: isinstance(x, dict))] \
        if "chart" in alerts.columns else alerts.iloc[:0]
    if with_chart.empty:
        return None
    ranked = sorted(with_chart.itertuples(), key=lambda r: (
        r.state != "resolved", level_rank(r.level), r.raised_at), reverse=True)
    return ranked[0].chart
