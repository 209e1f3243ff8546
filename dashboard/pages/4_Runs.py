"""Runs: job runs (status, duration, errors) and inference runs (megapixels/s)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common as c

c.page_setup("Runs")
st.title("Runs")
url = c.store_url()
jobs = c.load_job_runs(url)
runs = c.load_inference_runs(url)
if jobs.empty and runs.empty:
    c.empty_state("No runs recorded yet.",
                  "Runs appear when the nightly job or `crackwatch demo` processes a survey; "
                  "start the scheduler or run the demo.")
    st.stop()

m = st.columns(4)
m[0].metric("Job runs", len(jobs))
m[1].metric("Failed job runs", int((jobs["status"] == "failed").sum()))
m[2].metric("Inference runs", len(runs))
mps = runs["megapixels_per_s"].dropna()
m[3].metric("Median megapixels/s", f"{mps.median():.2f}" if len(mps) else "-")


def _duration(seconds: float) -> str:
    """Seconds as ``12.3 s`` / ``4.5 min`` (``-`` when unknown)."""
    if pd.isna(seconds):
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


st.subheader("Job runs")
if jobs.empty:
    st.info("No job runs yet (the scheduler records one per nightly job and ingest).")
else:
    view = pd.DataFrame({
        "run": jobs["job_run_id"], "job": jobs["job"], "site": jobs["site_name"].fillna("-"),
        "survey": jobs["survey_id"], "status": jobs["status"],
        "started (UTC)": jobs["started_at"].map(c.when),
        "duration": [_duration(d) if s != "running" else "running"
                     for d, s in zip(jobs["duration_s"], jobs["status"], strict=True)],
        "megapixels/s": [((steps or {}).get("infer") or {}).get("megapixels_per_s")
                         if isinstance((steps or {}).get("infer"), dict) else None
                         for steps in jobs["steps"]],
        "steps": [", ".join(f"{k}: {v.get('status', v) if isinstance(v, dict) else v}"
                            for k, v in (steps or {}).items()) for steps in jobs["steps"]],
        "error": jobs["error"].fillna("").map(lambda e: e.strip().splitlines()[-1] if e else ""),
    })
    st.dataframe(view, hide_index=True, width="stretch",
                 column_config={"megapixels/s": st.column_config.NumberColumn(format="%.2f")})
    failed = jobs[jobs["error"].notna()]
    for r in failed.head(20).itertuples():
        with st.expander(f"Error of job run {r.job_run_id} ({c.md(r.job)}, "
                         f"{c.when(r.started_at)})"):
            st.code(r.error, language=None)

outbox = c.load_undelivered_notifications(url)
st.subheader("Notifications not yet delivered")
if outbox.empty:
    st.success("Every alert notification has been delivered.")
else:
    st.dataframe(pd.DataFrame({
        "alert": outbox["alert_id"], "site": outbox["site_name"],
        "channel": outbox["channel"], "level": outbox["level"], "status": outbox["status"],
        "tries": outbox["attempts"], "last error": outbox["last_error"].fillna(""),
        "last try (UTC)": outbox["last_attempt_at"].map(c.when),
        "next try (UTC)": outbox["next_attempt_at"].map(c.when),
    }), hide_index=True, width="stretch")
    st.caption("Each is sent again by the next `crackwatch run` of its site and by the "
               "scheduler every few minutes.")

st.subheader("Inference runs")
if runs.empty:
    st.info("No inference runs yet.")
else:
    view = pd.DataFrame({
        "run": runs["run_id"], "site": runs["site_name"],
        "survey (UTC)": runs["acquired_at"].map(c.when), "model": runs["model_name"],
        "version": runs["model_version"].fillna("-"), "status": runs["status"],
        "started (UTC)": runs["started_at"].map(c.when),
        "duration": [_duration(d) if s != "running" else "running"
                     for d, s in zip(runs["duration_s"], runs["status"], strict=True)],
        "megapixels/s": runs["megapixels_per_s"], "cracks": runs["crack_count"],
        "error": runs["error"].fillna("").map(lambda e: e.strip().splitlines()[-1] if e else ""),
    })
    st.dataframe(view, hide_index=True, width="stretch",
                 column_config={"megapixels/s": st.column_config.NumberColumn(format="%.2f")})
    for r in runs[runs["error"].notna()].head(20).itertuples():
        with st.expander(f"Error of inference run {r.run_id} ({c.md(r.site_name)})"):
            st.code(r.error, language=None)
