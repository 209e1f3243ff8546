"""Model registry: find model cards, load weights offline, verify their SHA-256.

Shipped models live in ``engine/weights/`` (``NAME.safetensors`` + ``NAME.json``); a user folder
can be given with ``weights_dir`` and is searched first. Nothing is downloaded and nothing is
unpickled: weights are safetensors, cards are JSON. Finding and reading cards is torch-free
(:mod:`engine.cards`; :func:`list_cards`, :func:`find_card` and :data:`WEIGHTS_DIR` are
re-exported here).

Site profiles. A site is a ``structure`` or a ``slope`` (``geodata.store.models.PROFILES``);
each profile has one shipped model, :data:`PROFILE_MODELS`, read from
``engine/profile_models.json`` (:mod:`engine.profiles`; a data file, so that the dashboard,
which does not import the model stack, shows the same choice). A card may say which profile its
model serves with ``"site_profile": "structure"`` or ``"slope"``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engine.cards import (  # noqa: F401
    WEIGHTS_DIR,
    ancestors,
    find_card,
    lineage_root,
    lineage_steps,
    list_cards,
)
from engine.checkpoint import load_state, sha256_file, write_card
from engine.errors import ModelCardError, ModelNotFoundError, WeightsIntegrityError
from engine.models import build_model
from engine.profiles import SITE_PROFILES, read_profile_models  # noqa: F401 - re-exported

#: Site profile -> the shipped model that serves it (the pipeline's choice for a site that
#: names no model of its own). Read from ``engine/profile_models.json``
#: (:data:`engine.profiles.PROFILE_MODELS_FILE`): edit that file to change it.
PROFILE_MODELS: dict[str, str] = read_profile_models()
#: The structure model: the model of commands that take no site (``infer``, ``evaluate``...).
DEFAULT_MODEL: str = PROFILE_MODELS["structure"]


def model_for_profile(profile: str) -> str:
    """The name of the model that serves site profile ``profile`` (:data:`PROFILE_MODELS`).

    Raises:
        ValueError: ``profile`` is no site profile.
    """
    try:
        return PROFILE_MODELS[profile]
    except (KeyError, TypeError):
        raise ValueError(f"no site profile {profile!r}; the profiles are "
                         f"{', '.join(sorted(PROFILE_MODELS))}") from None


def load_model(name: str = DEFAULT_MODEL, *, weights_dir: Path | None = None,
               device: str | torch.device = "cpu", runtime: str | None = "auto") -> nn.Module:
    """Build model ``name`` from its card and load its verified weights, in ``eval()`` mode.

    The returned module carries its card as ``model.card``. Input ``(B, 3, H, W)`` normalised as
    the card's ``normalisation`` says; output ``(B, 1, H, W)`` logits, with the card's
    ``calibration`` (:mod:`engine.calibration`) applied when it has one.

    ``runtime``: what tiled inference on the CPU runs the model through
    (:func:`engine.runtime.set_runtime`; ``auto``: the fastest installed, ``torch``,
    ``onnxruntime``, ``openvino``); calling the module itself is always PyTorch.

    Raises:
        RuntimeUnavailableError: ``runtime`` names a runtime that is not installed or not for
            ``device``.
        ModelNotFoundError: no such model, or its weights file is missing.
        WeightsIntegrityError: the weights' SHA-256 differs from the card's.
        ModelCardError: the card is malformed.
    """
    card = find_card(name, weights_dir)
    wpath = Path(card["_card_path"]).parent / card["weights"]["file"]
    if not wpath.is_file():
        raise ModelNotFoundError(
            f"Weights file {wpath} named by card {card['_card_path']} is missing; restore it "
            f"(git checkout / git lfs pull) or retrain the model."
        )
    digest = sha256_file(wpath)
    expected = card["weights"].get("sha256")
    if digest != expected:
        raise WeightsIntegrityError(
            f"Weights {wpath} have SHA-256 {digest} but the model card expects {expected}. The "
            f"file is corrupt or was replaced; restore it from git or retrain, and never load "
            f"weights whose origin you cannot verify."
        )
    model = build_model(card["architecture"])
    try:
        model.load_state_dict(load_state(wpath), strict=True)
    except RuntimeError as exc:
        raise ModelCardError(
            f"Weights {wpath} do not fit the architecture in {card['_card_path']}: {exc}"
        ) from exc
    cal = card.get("calibration")
    if cal:
        from engine.calibration import set_calibration

        set_calibration(model, cal["scale"], cal["bias"])
    model.to(device).eval()
    model.card = card
    from engine.runtime import set_runtime

    set_runtime(model, runtime)
    return model


def record_metrics(name: str, report: dict, weights_dir: Path | None = None) -> Path:
    """Store an evaluation report under ``card["metrics"][dataset]`` and rewrite the card.

    A report made with test-time augmentation is stored under ``"<dataset> +tta"``, beside the
    plain one.
    """
    card = find_card(name, weights_dir)
    path = Path(card.pop("_card_path"))
    keep = {k: report[k] for k in ("images", "tta", "at_0.5", "ods", "command", "seconds",
                                   "megapixels_per_s", "device") if k in report}
    key = report["dataset"] + (" +tta" if report.get("tta") else "")
    card.setdefault("metrics", {})[key] = keep
    write_card(card, path)
    return path


def _fmt(x, pct: bool = True) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" if pct else f"{x}"


def _start(card: dict) -> str:
    """Where the weights started, for the Architecture line (issue 26: never "random init"
    when an ancestor was pretrained)."""
    root = lineage_root(card)
    if root == "random init":
        return "random init, no pretrained weights"
    if root.startswith("ImageNet"):
        return (f"encoder pretrained on {root}" if not card.get("training", {})
                .get("initialised_from") else f"fine-tuned from a line that starts at {root}")
    return root


FIELD_TABLE_START = "<!-- field-table: generated by `crackwatch models table`; do not edit -->"
FIELD_TABLE_END = "<!-- field-table end -->"


def render_field_table(cards: list[dict]) -> str:
    """The README's model table, made only from the cards' ``metrics.field_suite`` (written by
    ``crackwatch evaluate --suite field --update-card``), so it cannot drift from them:
    pooled IoU % at 0.5 (and the best threshold: its IoU) per test set, the crack-free terrain
    test figures, training steps and where the weights started. Cards without a field suite
    are left out."""
    head = ("| model | serves | DeepCrack test | UAV75 test | rockfracture test | terrain test: "
            "crack px % | components >= 50 px / MP | training steps | start |\n"
            "|---|---|---|---|---|---|---|---|---|")
    rows = []
    for card in cards:
        fs = card.get("metrics", {}).get("field_suite")
        if not fs:
            continue
        cells = []
        for name in ("deepcrack-test", "uav75-test", "rockfracture-test"):
            m = fs["sets"].get(name)
            cells.append("-" if not m else
                         f"{100 * m['at_0.5']['iou']:.1f} (ODS {m['ods']['threshold']:.2f}: "
                         f"{100 * m['ods']['iou']:.1f})")
        neg = fs.get("negatives", {})
        own, before = lineage_steps(card)
        steps = (f"{own:,}" + (f" (+ {before:,} in ancestors)" if before else "")
                 if own else "")
        rows.append(f"| `{card['name']}` | {card.get('site_profile') or '-'} | "
                    + " | ".join(cells)
                    + f" | {neg.get('crack_pixel_pct', float('nan')):.3f} | "
                      f"{neg.get('components_per_mp', float('nan')):.2f} | "
                      f"{steps if steps else 'not recorded'} | {lineage_root(card)} |")
    return "\n".join([FIELD_TABLE_START, head, *rows, FIELD_TABLE_END])


def render_model_card(card: dict) -> str:
    """Markdown model card made only from the JSON card (so every number is a measured one)."""
    a, t = card["architecture"], card.get("training", {})
    lines = [
        f"## {card['name']}",
        "",
        f"- **Task**: {card.get('task', '')}",
        *([f"- **Serves**: {card['site_profile']} sites"] if card.get("site_profile") else []),
        f"- **Architecture**: {a.get('family')} with a {a.get('encoder')} encoder "
        f"({_start(card)}), {a.get('parameters', 0) / 1e6:.2f} M parameters, "
        f"dropout: {a.get('dropout', '-')}",
        f"- **Weights**: `{card['weights']['file']}`, fp16 safetensors, "
        f"{card['weights']['bytes'] / 1e6:.1f} MB, sha256 `{card['weights']['sha256']}`",
        f"- **Input**: {a.get('input')}; normalisation mean {card['normalisation']['mean']}, "
        f"std {card['normalisation']['std']} after scaling by 1/255; tile size "
        f"{card.get('tile_size')}, threshold {card.get('threshold')}",
        f"- **Trained**: {t.get('epochs_run')} epochs ({t.get('minutes')} min, best epoch "
        f"{t.get('best_epoch')}, {t.get('stop_reason')}) on {card.get('hardware')}; git "
        f"`{card.get('git_sha')}`",
        f"- **Command**: `{card.get('command')}`",
    ]
    if t.get("steps"):
        lines.append(f"- **Training steps**: {t['steps']} of batch {t.get('batch_size')} "
                     f"({t.get('crops_seen')} crops), {t.get('torch_threads')} torch threads, "
                     f"{t.get('minutes')} min wall time; resumed "
                     f"{len(t.get('resume_points', []))} time(s)"
                     + "".join(f"; after epoch {p['after_epoch']} (step {p['step']}, "
                               f"{p['minutes']} min, {p['at']})"
                               for p in t.get("resume_points", [])))
        own, before = lineage_steps(card)
        if own is not None and own < t["steps"]:
            lines[-1] += (f"; the weights are those of its best epoch, {own:,} steps in "
                          f"(later epochs scored lower on validation)")
        if before:
            lines[-1] += (f"; {own + before:,} steps with its ancestors' "
                          f"({before:,} in ancestors)")
    chain = ancestors(card)
    lines.append("- **Lineage**: " + " <- ".join(
        [f"`{card['name']}`"] + [f"`{x['name']}`" if x.get("name") else x["from"]
                                 for x in chain]))
    init = t.get("initialised_from")
    if init:
        lines.append(f"- **Initialised from**: `{init.get('name')}` (sha256 "
                     f"`{str(init.get('sha256'))[:12]}...`, {init.get('minutes')} min)")
    for step in card.get("lineage", []):
        lines.append(f"  - lineage: `{step['name']}` from {step['from']}, {step['minutes']} min "
                     f"on {step['hardware']} (card: {step['card']})")
    if card.get("training_data_copy"):
        lines.append(f"- **Data copy**: {card['training_data_copy']}")
    lines += [
        "",
        "Training data (sampling weight, license):",
        "",
    ]
    for d in card.get("training_data", []):
        lines.append(f"- {d['dataset']} ({d['sampling_weight']}, {d['license']}): "
                     f"{d['citation']}")
    lines += ["", "Test metrics (percent; pooled over all pixels of the split):", "",
              "| dataset | threshold | precision | recall | F1 | IoU | mean image IoU | "
              "F1 (2 px tolerance) | thin-crack recall (strict / 2 px) | planking FPR |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for ds, m in card.get("metrics", {}).items():
        if ds == "validation":
            continue
        for key in ("at_0.5", "ods"):
            r = m.get(key)
            if not r:
                continue
            lines.append(
                f"| {ds} ({m.get('images')} images) | {key} ({r['threshold']:.3f}) | "
                f"{_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1'])} | "
                f"{_fmt(r['iou'])} | {_fmt(r['mean_image_iou'])} | {_fmt(r['tolerant']['f1'])} | "
                f"{_fmt(r['thin_crack_recall'])} / {_fmt(r['thin_crack_recall_tolerant'])} | "
                f"{_fmt(r.get('planking_fpr'))} |")
    cmds = [m["command"] for ds, m in card.get("metrics", {}).items()
            if ds != "validation" and m.get("command")]
    if cmds:
        lines += ["", "Produced by:", ""] + [f"    {c}" for c in cmds]
    lines += ["", f"**Limitations.** {card.get('limitations', '')}", ""]
    return "\n".join(lines)
