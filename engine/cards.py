"""Model cards: find and read the JSON cards beside the weights, without loading torch.

A card is ``NAME.json`` beside ``NAME.safetensors``: shipped ones in ``engine/weights/``
(:data:`WEIGHTS_DIR`), a user folder (``weights_dir``) searched first. :mod:`engine.registry`
builds and verifies models from these cards; listing them needs only this module (json and
pathlib), so ``crackwatch models list`` and the dashboard's Models page do not import torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import ModelCardError, ModelNotFoundError
from engine.profiles import SITE_PROFILES

__all__ = ["EXPERIMENTS_DIR", "WEIGHTS_DIR", "ancestors", "find_card", "lineage_root",
           "lineage_steps", "list_cards", "weights_steps",
           "read_card", "search_dirs"]

#: The shipped weights and cards.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Cards of runs tried and not shipped (no weights), for lineage and the README.
EXPERIMENTS_DIR = WEIGHTS_DIR / "experiments"


def search_dirs(weights_dir: Path | None) -> list[Path]:
    """The folders searched for cards, in order: ``weights_dir`` (if given), then
    :data:`WEIGHTS_DIR`."""
    return ([Path(weights_dir)] if weights_dir else []) + [WEIGHTS_DIR]


def read_card(path: Path) -> dict:
    """The card at ``path`` as a dict, with its path under ``"_card_path"``.

    Raises:
        ModelCardError: not readable JSON, not an object, lacks ``name``, ``architecture``
            or ``weights``, or names an unknown ``site_profile``.
    """
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"Model card {path} is not valid JSON ({exc}); restore it from git "
                             f"or retrain the model.") from exc
    if not isinstance(card, dict):
        raise ModelCardError(f"Model card {path} is not a JSON object; restore it or retrain.")
    for key in ("name", "architecture", "weights"):
        if key not in card:
            raise ModelCardError(f"Model card {path} lacks {key!r}; restore it or retrain.")
    served = card.get("site_profile")
    if served is not None and served not in SITE_PROFILES:
        raise ModelCardError(f"Model card {path} says site_profile {served!r}, which is no site "
                             f"profile; set it to one of {', '.join(SITE_PROFILES)} or remove "
                             f"the key.")
    card["_card_path"] = str(path)
    return card


def list_cards(weights_dir: Path | None = None, *,
               problems: list[str] | None = None) -> list[dict]:
    """Every model card found (``weights_dir`` first, then shipped), one per name.

    A file that is not a valid card is skipped; with ``problems`` given, the reason (a
    :class:`ModelCardError` message naming the file) is appended to it.
    """
    seen, cards = set(), []
    for d in search_dirs(weights_dir):
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.json")):
            try:
                card = read_card(p)
            except ModelCardError as exc:
                if problems is not None:
                    problems.append(str(exc))
                continue
            if card["name"] not in seen:
                seen.add(card["name"])
                cards.append(card)
    return cards


def find_card(name: str, weights_dir: Path | None = None) -> dict:
    """The card of model ``name``.

    Raises:
        ModelNotFoundError: no card of that name in the user folder or the shipped weights.
        ModelCardError: the card is malformed (see :func:`read_card`).
    """
    for d in search_dirs(weights_dir):
        p = d / f"{name}.json"
        if p.is_file():
            return read_card(p)
    available = ", ".join(c["name"] for c in list_cards(weights_dir)) or "none"
    raise ModelNotFoundError(
        f"No model named {name!r} in {', '.join(map(str, search_dirs(weights_dir)))}. "
        f"Available: {available}. See `crackwatch models list`."
    )


def ancestors(card: dict) -> list[dict]:
    """The lineage of a model's weights from its card, nearest first, ending with the root
    (``{"from": "ImageNet ..." | "random init" | "unknown ..."}``): the card's
    ``lineage_chain`` when it has one (cards written since issue 26), else rebuilt from
    ``training.initialised_from`` / ``pretrained_encoder`` and the ancestors' cards
    (:func:`find_card` in the shipped weights, then :data:`EXPERIMENTS_DIR`)."""
    if card.get("lineage_chain"):
        return [dict(x) for x in card["lineage_chain"]]
    t = card.get("training", {})
    if t.get("pretrained_encoder"):
        p = t["pretrained_encoder"]
        return [{"from": f"ImageNet ({p.get('package', 'pretrained encoder')})",
                 "encoder": p.get("encoder")}]
    init = t.get("initialised_from")
    if not init:
        return [{"from": "random init"}]
    step = {k: init.get(k) for k in ("name", "sha256", "minutes", "command")}
    try:
        parent = find_card(init["name"])
    except ModelNotFoundError:
        try:
            parent = find_card(init["name"], EXPERIMENTS_DIR)
        except ModelNotFoundError:
            return [step, {"from": f"unknown (no card for {init['name']} here)"}]
    return [step, *ancestors(parent)]


def weights_steps(training: dict) -> int | None:
    """The optimiser steps the saved weights saw: a run keeps its best epoch's weights, so a
    run that went on past its best epoch ran more steps than its weights saw.
    ``training.steps_at_best`` (cards since 2026-12-07), else ``best_epoch`` full epochs of
    ``samples_per_epoch / batch_size`` steps when the best epoch was not the last, else
    ``training.steps``; None where the card records no steps."""
    steps = training.get("steps")
    if training.get("steps_at_best") is not None:
        return int(training["steps_at_best"])
    best, run = training.get("best_epoch"), training.get("epochs_run")
    if steps is None or not best or not run or best >= run:
        return steps
    per_epoch = int(training.get("samples_per_epoch") or 0) // int(training.get("batch_size") or 1)
    return min(int(steps), best * per_epoch) if per_epoch else steps


def lineage_steps(card: dict) -> tuple[int | None, int | None]:
    """``(own, ancestors)``: the optimiser steps the model's weights saw in its own run
    (:func:`weights_steps`) and the sum over its ancestors back to ImageNet or random init
    (:func:`ancestors`; 0 without one). Either is None where a card does not record them
    (runs before issue 26)."""
    own = weights_steps(card.get("training", {}))
    total = 0
    for step in ancestors(card):
        if "from" in step:  # the root: ImageNet or random init, no steps of ours
            continue
        n = step.get("steps")
        if n is None:
            for folder in (None, EXPERIMENTS_DIR):
                try:
                    n = weights_steps(find_card(step["name"], folder).get("training", {}))
                    break
                except ModelNotFoundError:
                    continue
        if n is None:
            return own, None
        total += int(n)
    return own, total


def lineage_root(card: dict) -> str:
    """Where a model's weights started, back through every ancestor: ``"ImageNet (...)"``,
    ``"random init"`` or ``"unknown ..."`` (:func:`ancestors`)."""
    return ancestors(card)[-1]["from"]
