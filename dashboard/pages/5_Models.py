"""Models: the model cards (JSON beside the weights), their metrics, and the site profile
each serves and is the default model of.

The cards are the ones ``crackwatch models list`` shows: :func:`engine.cards.list_cards` (a
torch-free module; the dashboard does not import the model stack) over ``CRACKWATCH_WEIGHTS_DIR``
first, then the shipped ``engine/weights/``, one card per model name. The profile table is read
from ``engine/profile_models.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common as c
from engine.cards import list_cards, search_dirs


def weights_dir() -> Path | None:
    """``CRACKWATCH_WEIGHTS_DIR`` if set (searched before the shipped cards), else None."""
    env = os.environ.get(c.ENV_WEIGHTS, "").strip()
    return Path(env).expanduser() if env else None


@st.cache_data(ttl=c.CACHE_TTL_S, show_spinner=False)
def load_cards(folder: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The cards :func:`engine.cards.list_cards` finds (``folder`` first, then the shipped
    ones) and, for each file skipped, why."""
    problems: list[str] = []
    cards = list_cards(Path(folder) if folder else None, problems=problems)
    return cards, problems


def _pct(v: Any) -> str:
    return f"{100 * v:.1f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def test_metrics(metrics: dict[str, Any]) -> pd.DataFrame:
    """The card's test metrics as one small table (issue 28, item 5: the flattened metrics
    were ~12,900 px wide and showed None): a row per evaluated dataset with images, IoU,
    F1, precision and recall in % at threshold 0.5, the best threshold (ODS) and its IoU,
    the 2-px tolerant F1."""
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or not isinstance(m.get("at_0.5"), dict):
            continue
        at, ods = m["at_0.5"], m.get("ods") or {}
        rows.append({"dataset": name, "images": m.get("images"), "IoU %": _pct(at.get("iou")),
                     "F1 %": _pct(at.get("f1")), "precision %": _pct(at.get("precision")),
                     "recall %": _pct(at.get("recall")),
                     "best threshold": (f"{ods['threshold']:.2f}"
                                        if isinstance(ods.get("threshold"), float) else "-"),
                     "IoU % at best": _pct(ods.get("iou")),
                     "F1 % (2 px tolerant)": _pct((at.get("tolerant") or {}).get("f1"))})
    return pd.DataFrame(rows)


def terrain_text(metrics: dict[str, Any]) -> str | None:
    """The field suite's crack-free terrain figures in one sentence (None without them)."""
    neg = (metrics.get("field_suite") or {}).get("negatives") or {}
    if not isinstance(neg, dict) or "crack_pixel_pct" not in neg:
        return None
    per_mp = neg.get("components_per_mp")
    return (f"Crack-free terrain ({c.md(neg.get('dataset', 'negatives'))}, "
            f"{neg.get('images', '?')} images): {neg['crack_pixel_pct']:.3f} % of pixels "
            f"predicted crack" + (f", {per_mp:.2f} cracks per megapixel"
                                  if isinstance(per_mp, (int, float)) else "") + ".")


c.page_setup("Models")
st.title("Models")
folder = weights_dir()
folders = ", ".join(str(d) for d in search_dirs(folder))
cards, problems = load_cards(str(folder) if folder else None)
for problem in problems:
    st.warning(c.md(problem))
if not cards:
    c.empty_state(f"No model cards in {c.md(folders)}.",
                  "Trained models live there as `NAME.safetensors` with a `NAME.json` card "
                  "beside them. Train one with `crackwatch train segment` (documentation: "
                  "Models), or point "
                  f"`{c.ENV_WEIGHTS}` at a folder of cards.")
    st.stop()

st.caption(f"{len(cards)} model card(s) in {c.code(folders)}")
defaults = c.profile_models()
if defaults:
    st.markdown("**Model of each site profile:** " + ", ".join(
        f"{c.md(profile)} sites: {c.code(name)}" for profile, name in sorted(defaults.items()))
        + ". A site can name another model: `crackwatch site set-model SITE --model NAME`.")
for card in cards:
    default_for = sorted(p for p, name in defaults.items() if name == card["name"])
    label = f"{c.md(card['name'])} (version {c.md(card.get('version', '-'))})"
    if default_for:
        label += f", default for {c.md(', '.join(default_for))} sites"
    with st.expander(label, expanded=True):
        served = card.get("site_profile")
        st.markdown(f"**Serves:** {c.md(served)} sites" if isinstance(served, str) and served
                    else "**Serves:** - (the card names no site profile)")
        if card.get("task"):
            st.markdown(f"**Task:** {c.md(card['task'])}")
        arch = card.get("architecture") or {}
        if isinstance(arch, dict) and arch:
            st.markdown("**Architecture:** " + c.md(", ".join(
                f"{k} = {v}" for k, v in arch.items() if isinstance(v, (str, int, float)))))
        weights = card.get("weights") or {}
        if isinstance(weights, dict) and weights:
            size = weights.get("bytes")
            st.markdown(f"**Weights:** {c.code(weights.get('file', '-'))}"
                        + (f", {size / 1e6:.1f} MB" if isinstance(size, (int, float)) else "")
                        + (f", sha256 {c.code(weights['sha256'])}" if weights.get("sha256")
                           else ""))
        norm = card.get("normalisation")
        if isinstance(norm, dict):
            st.markdown("**Input normalisation:** " + c.md(", ".join(
                f"{k} {v}" for k, v in norm.items())))
        metrics = card.get("metrics") or {}
        table = test_metrics(metrics) if isinstance(metrics, dict) else pd.DataFrame()
        if len(table):
            st.markdown("**Test metrics** (pooled over each test set)")
            st.dataframe(table, hide_index=True, width="stretch")
            terrain = terrain_text(metrics)
            if terrain:
                st.caption(terrain)
            st.caption("Every recorded figure (validation, commands, per-image counts):")
            st.json(metrics, expanded=False)  # collapsed; no expander inside an expander
        elif isinstance(metrics, dict) and metrics:
            st.caption("No test-set metrics on this card; what it records is below.")
            st.json(metrics, expanded=False)
        else:
            st.caption("No metrics recorded on this card (`crackwatch evaluate` records them).")
        data = card.get("training_data")
        if isinstance(data, list) and data:
            st.markdown("**Training data and licenses**")
            st.dataframe(pd.DataFrame(data), hide_index=True, width="stretch")
        if card.get("command"):
            st.markdown("**Produced by**")
            st.code(card["command"] if isinstance(card["command"], str)
                    else c.json_text(card["command"]), language=None)
        if card.get("limitations"):
            st.info(f"**Limitations:** {c.md(card['limitations'])}")
        st.caption(f"Card file: {c.md(Path(card['_card_path']).name)}")
