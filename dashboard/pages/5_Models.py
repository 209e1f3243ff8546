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


def _flatten(d: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as ``{"a.b": 0.9}``."""
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip(".")] = float(d)
    return out


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
                  "beside them. Train one with `crackwatch train` (see the README), or point "
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
        if isinstance(metrics, dict) and metrics:
            st.markdown("**Metrics**")
            rows = {name: _flatten(m) for name, m in metrics.items()}
            st.dataframe(pd.DataFrame(rows).T.rename_axis("dataset"), width="stretch")
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
