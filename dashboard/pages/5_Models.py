"""Models: the model cards (JSON beside the weights), their metrics, and the site profile
each serves and is the default model of.

Cards are read as JSON files straight from ``engine/weights/`` (or ``CRACKWATCH_WEIGHTS_DIR``),
the profile table from ``engine/profile_models.json``; the dashboard does not import the
engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import common as c

SHIPPED = Path(__file__).resolve().parents[2] / "engine" / "weights"


def weights_dir() -> Path:
    """``CRACKWATCH_WEIGHTS_DIR`` if set, else the shipped ``engine/weights``."""
    env = os.environ.get(c.ENV_WEIGHTS, "").strip()
    return Path(env).expanduser() if env else SHIPPED


@st.cache_data(ttl=c.CACHE_TTL_S, show_spinner=False)
def load_cards(folder: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every ``*.json`` card in ``folder`` (sorted by name) and the problems reading others."""
    cards, problems = [], []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            card = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{p.name}: not readable JSON ({exc})")
            continue
        if not isinstance(card, dict) or "name" not in card:
            problems.append(f"{p.name}: not a model card (no 'name')")
            continue
        card["_file"] = p.name
        cards.append(card)
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
cards, problems = load_cards(str(folder))
for problem in problems:
    st.warning(c.md(problem))
if not cards:
    c.empty_state(f"No model cards in {c.md(folder)}.",
                  "Trained models live there as `NAME.safetensors` with a `NAME.json` card "
                  "beside them. Train one with `crackwatch train` (see the README), or point "
                  f"`{c.ENV_WEIGHTS}` at a folder of cards.")
    st.stop()

st.caption(f"{len(cards)} model card(s) in {c.code(folder)}")
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
        st.caption(f"Card file: {c.md(card['_file'])}")
