"""``crackwatch evaluate`` and ``crackwatch models ...``: how good the models are (registered
in :mod:`jobs.cli.main`).

Commands:
    crackwatch evaluate ...           metrics of a model on a labelled dataset, beside the papers
    crackwatch models calibrate NAME  fit the logit map that centres each set's best threshold
    crackwatch models card [NAMES]    model cards as Markdown
    crackwatch models export NAME     an ONNX file for QGIS (Deepness), metadata included
    crackwatch models list            shipped / user models with their cards and metrics
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from jobs.cli.common import _fail, command_line, console, profile_of

__all__ = ["print_report", "register"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


# long-function: a typer command: most of its lines are its options and their help.
def evaluate(
    model: list[str] = typer.Option(None, help="Model name, repeatable with --suite (default: "
                                    "the default shipped model; with --suite, the model of "
                                    "each site profile)."),
    dataset: str = typer.Option("deepcrack-test", help="deepcrack-test | uav75-test | "
                                "rockfracture-test | masonry | uav75-val | PATH with images/ "
                                "and masks/"),
    suite: str | None = typer.Option(None, help="'field': every test set (DeepCrack, UAV75, "
                                     "rockfracture) at 0.5 and ODS plus the held-out "
                                     "crack-free terrain, one table (--dataset is ignored). "
                                     "'unsupervised': PatchCore fitted on each set's "
                                     "crack-free training tiles, the shipped UP-CrackNet and "
                                     "VAE + Grad-CAM, beside the shipped U-Nets (pixel IoU/F1, "
                                     "pixel and tile AUROC). 'site-change': the per-site "
                                     "surface-change layer on the SIMULATED growth site and "
                                     "registered brighton_beach photos."),
    method: list[str] = typer.Option(None, "--method", help="--suite unsupervised: "
                                     "patchcore | upcracknet | vae-gradcam, repeatable "
                                     "(default: all three); --model none leaves out the "
                                     "supervised rows."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N images."),
    device: str = typer.Option("cpu"),
    out: Path | None = typer.Option(None, help="Write the JSON report here."),
    update_card: bool = typer.Option(False, help="Record the metrics (and this command) in the "
                                     "model card."),
    tta: bool = typer.Option(False, help="Test-time augmentation: average over 4 flips (4x "
                             "slower)."),
    worst: int = typer.Option(5, min=0, help="List the N images with the most wrong pixels at "
                              "0.5 (every image's counts are in the --out report)."),
    profile: str | None = typer.Option(None, help="Site profile whose pipeline rules "
                                       "--suite field and --filter-sweep apply (default: the "
                                       "profile the model serves)."),
    filter_sweep: bool = typer.Option(False, "--filter-sweep", help="Sweep the crack-object "
                                      "shape rules: recall of labelled crack length vs false "
                                      "cracks per MP on whole crack-free photos."),
    tile_gate: bool = typer.Option(False, "--tile-gate", help="--filter-sweep: each rule "
                                   "also with the shipped crack / no-crack tile gate."),
) -> None:
    """Pooled pixel precision/recall/F1/IoU at 0.5 and ODS, tolerant metrics, beside the papers."""
    from engine.evaluate import evaluate_model
    from engine.registry import DEFAULT_MODEL, load_model, record_metrics

    if filter_sweep:
        from jobs.cli.pipeline_eval import run_filter_sweep

        name = model[0] if model else DEFAULT_MODEL
        try:
            net = load_model(name, weights_dir=weights_dir, device=device)
            run_filter_sweep(name, net, profile_of(name, profile), data_root, limit, device, out,
                             tile_gate=tile_gate)
        except (*_evaluation_errors(), ValueError) as exc:
            _fail(exc)
        return
    if suite == "unsupervised":
        _evaluate_unsupervised(model, data_root, limit, out, method)
        return
    if suite == "site-change":
        _evaluate_site_change(data_root, out)
        return
    if suite is not None:
        if suite != "field":
            _fail(ValueError(f"--suite {suite!r}: the suites are 'field', 'unsupervised' "
                             f"and 'site-change'."))
        _evaluate_field(model, weights_dir, data_root, limit, device, out, profile,
                        update_card=update_card)
        return
    if model and len(model) > 1:
        _fail(ValueError("give one --model (several only with --suite field)."))
    name = model[0] if model else DEFAULT_MODEL
    try:
        net = load_model(name, weights_dir=weights_dir, device=device)
        report = evaluate_model(net, dataset, data_root=data_root, device=device, limit=limit,
                                tta=tta)
    except _evaluation_errors() as exc:
        _fail(exc)
    report["model"] = name
    report["command"] = command_line()
    print_report(report, worst=worst)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {out}")
    if update_card:
        path = record_metrics(name, report, weights_dir=weights_dir)
        console.print(f"metrics recorded in {path}")


def _evaluate_site_change(data_root: Path | None, out: Path | None) -> None:
    """``crackwatch evaluate --suite site-change``: :mod:`jobs.site_change_eval`."""
    from engine.errors import DataNotFoundError
    from jobs.site_change_eval import brighton_pair_figures, growth_site_figures

    try:
        growth = growth_site_figures(progress=lambda m: console.print(m, style="dim",
                                                                      markup=False))
        console.print("brighton_beach: three real photos, registered (minutes)", style="dim")
        brighton = brighton_pair_figures(data_root)
    except (DataNotFoundError, ValueError) as exc:
        _fail(exc)
    t = Table(title="Surface change (unsupervised), SIMULATED growth site, baseline = night 1 "
                    f"(threshold {growth['threshold']:.2f}: {growth['threshold_rule']})")
    for col in ("night", "grown crack length px", "grown length covered %",
                "unchanged surface flagged %", "changed % of compared"):
        t.add_column(col, justify="right")
    for n in growth["nights"]:
        t.add_row(str(n["night"]), str(n["grown_length_px"]),
                  f"{n['grown_length_covered_pct']:.1f}", f"{n['unchanged_flagged_pct']:.3f}",
                  f"{n['changed_pct_of_compared']:.3f}")
    console.print(t)
    console.print(f"brighton_beach {brighton['compared']} against the baseline "
                  f"{' + '.join(brighton['baseline'])} (registration RMS "
                  f"{brighton['registration_rms_px']:.2f} px): "
                  f"{brighton['flagged_pct_of_overlap']:.3f} % of the overlap flagged "
                  f"(threshold {brighton['threshold']:.2f}: {brighton['threshold_rule']})",
                  markup=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"growth": growth, "brighton": brighton,
                                   "command": command_line()}, indent=2, default=str) + "\n")
        console.print(f"report written to {out}")


def _evaluate_unsupervised(models: list[str] | None, data_root: Path | None,
                           limit: int | None, out: Path | None,
                           methods: list[str] | None = None) -> None:
    """``crackwatch evaluate --suite unsupervised``: :func:`engine.anomaly_suite.
    anomaly_suite` as one table (and JSON with ``--out``)."""
    from engine.anomaly_registry import AnomalyWeightsError
    from engine.anomaly_suite import METHODS, anomaly_suite
    from engine.errors import PretrainedWeightsError

    try:
        rows = anomaly_suite(methods or list(METHODS), data_root=data_root, limit=limit,
                             supervised=[] if models == ["none"] else
                             (models or _profile_models()),
                             progress=lambda m: console.print(m, style="dim", markup=False))
    except (*_evaluation_errors(), PretrainedWeightsError, AnomalyWeightsError,
            ValueError) as exc:
        _fail(exc)
    part = f", first {limit} images of each set" if limit else ""
    t = Table(title=f"Supervised and unsupervised detectors, each at its own threshold rule; "
                    f"pixel figures pooled, percent{part}")
    for col in ("method", "test set", "IoU", "F1", "pixel AUROC", "tile AUROC",
                "flagged px %", "fit s", "score s"):
        t.add_column(col, justify="left" if col in ("method", "test set") else "right")
    for r in rows:
        px, im = r["pixel"], r["image"]
        card = r.get("card", {})
        fit = card.get("fit_and_calibrate_seconds", card.get("train_seconds"))
        t.add_row(r["method"], r["set"], _pct(px["iou"]), _pct(px["f1"]),
                  _pct(px["auroc"]), _pct(im["auroc"]), f"{px['flagged_pct']:.3f}",
                  "-" if fit is None else f"{fit:.0f}", f"{r['score_seconds']:.0f}")
    console.print(t)
    report = {"rows": rows, "command": command_line(), "limit": limit}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {out}")


def _evaluation_errors() -> tuple[type[Exception], ...]:
    """What loading a model or an evaluation dataset raises for bad input (one error line)."""
    from engine.errors import (
        DataNotFoundError,
        ImageReadError,
        MaskShapeError,
        ModelNotFoundError,
        PairingError,
        WeightsIntegrityError,
    )

    return (DataNotFoundError, PairingError, ImageReadError, MaskShapeError, ModelNotFoundError,
            WeightsIntegrityError)


def _profile_models() -> list[str]:
    """The shipped model of each site profile, without repeats."""
    from engine.registry import PROFILE_MODELS

    return list(dict.fromkeys(PROFILE_MODELS.values()))


def _evaluate_field(models: list[str] | None, weights_dir: Path | None, data_root: Path | None,
                    limit: int | None, device: str, out: Path | None,
                    profile: str | None = None, update_card: bool = False) -> None:
    """``crackwatch evaluate --suite field``: one table over models x test sets, then each
    model alone beside its profile's whole pipeline; ``update_card``: each report (and the
    command) goes into its model's card as ``metrics.field_suite`` (what ``crackwatch models
    table`` renders)."""
    from engine.crack_rules import rules_for
    from engine.evaluate import FIELD_NEGATIVES, evaluate_field_suite
    from engine.pipeline_eval import evaluate_pipeline
    from engine.registry import load_model
    from jobs.cli.pipeline_eval import print_pipeline

    reports = []
    try:
        for name in models or _profile_models():
            net = load_model(name, weights_dir=weights_dir, device=device)
            reports.append(evaluate_field_suite(net, data_root=data_root, device=device,
                                                limit=limit))
            prof = profile_of(name, profile)
            reports[-1]["pipeline"] = {"profile": prof, **evaluate_pipeline(
                net, rules_for(prof, name), data_root=data_root, device=device, limit=limit)}
    except (*_evaluation_errors(), ValueError) as exc:
        _fail(exc)
    part = f", first {limit} images of each set" if limit else ""
    t = Table(title=f"Field suite: IoU, F1, precision, recall at 0.5 and at the best "
                    f"threshold (ODS); pooled over every pixel, percent{part}")
    for col in ("model", "test set", "n", "IoU", "F1", "P", "R", "ODS thr", "ODS F1", "ODS IoU"):
        t.add_column(col, justify="left" if col in ("model", "test set") else "right",
                     no_wrap=col in ("model", "test set"))
    for r in reports:
        for name, m in r["sets"].items():
            a, o = m["at_0.5"], m["ods"]
            t.add_row(r["model"], name, str(m["images"]), _pct(a["iou"]), _pct(a["f1"]),
                      _pct(a["precision"]), _pct(a["recall"]), f"{o['threshold']:.3f}",
                      _pct(o["f1"]), _pct(o["iou"]))
    console.print(t)
    n = Table(title=f"Held-out crack-free terrain ({FIELD_NEGATIVES}: brighton_beach test "
                    f"photos, reviewed cells), threshold 0.5")
    for col in ("model", "n", "MP", "crack px %", "components >= 50 px", "per MP"):
        n.add_column(col, justify="left" if col == "model" else "right", no_wrap=col == "model")
    for r in reports:
        g = r["negatives"]
        n.add_row(r["model"], str(g["images"]), f"{g['megapixels']:.1f}",
                  f"{g['crack_pixel_pct']:.3f}", str(g["components"]),
                  f"{g['components_per_mp']:.2f}")
    console.print(n)
    for r in reports:
        print_pipeline(r["model"], r["pipeline"]["profile"], r["pipeline"])
    if update_card and limit:
        console.print("[yellow]--limit: the cards were not updated (a partial suite)[/]")
    elif update_card:
        from engine.checkpoint import write_card
        from engine.registry import find_card

        for r in reports:
            card = find_card(r["model"], weights_dir)
            path = Path(card.pop("_card_path"))
            card.setdefault("metrics", {})["field_suite"] = {"command": command_line(), **r}
            write_card(card, path)
            console.print(f"field suite recorded in {path}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"suite": "field", "command": command_line(),
                                   "reports": reports}, indent=2) + "\n")
        console.print(f"report written to {out}")


def print_report(report: dict, worst: int = 0) -> None:
    tta = ", flip TTA" if report.get("tta") else ""
    t = Table(title=f"{report['model']} on {report['dataset']} ({report['images']} images{tta})")
    for col in ("method", "thr", "P %", "R %", "F1 %", "IoU %", "mIoU %", "tol F1 %",
                "thin R %", "planking FPR %"):
        t.add_column(col, justify="right" if col != "method" else "left")
    for key, label in (("at_0.5", "this model @0.5"), ("ods", "this model @ODS")):
        m = report[key]
        t.add_row(label, f"{m['threshold']:.3f}", _pct(m["precision"]), _pct(m["recall"]),
                  _pct(m["f1"]), _pct(m["iou"]), _pct(m["mean_image_iou"]),
                  _pct(m["tolerant"]["f1"]), _pct(m["thin_crack_recall"]),
                  _pct(m.get("planking_fpr")))
    for row in report.get("paper_baselines", {}).get("rows", []):
        t.add_row(f"[dim]{row['method']}[/]", "", f"{row['precision']:.1f}",
                  f"{row['recall']:.1f}", f"{row['f1']:.1f}", f"{row['iou']:.1f}", "", "", "",
                  "")
    console.print(t)
    if "paper_baselines" in report:
        console.print(f"[dim]paper rows: {report['paper_baselines']['source']}[/]")
    console.print(f"{report['megapixels_per_s']} MP/s on {report['device']}, "
                  f"{report['seconds']} s")
    rows = report.get("per_image", [])
    if worst and rows:
        m = report["at_0.5"]["counts"]
        wrong = m["fp"] + m["fn"]
        _print_worst(rows, "image", "images", worst, wrong)
        if report.get("per_photo"):
            _print_worst(report["per_photo"], "photo", "source photos (tiles summed)", worst,
                         wrong)


def _print_worst(rows: list[dict], key: str, what: str, n: int, wrong: int) -> None:
    """Table of the ``n`` rows (per image or per photo) with the most wrong pixels at 0.5."""
    tiles = key == "photo"
    w = Table(title=f"the {min(n, len(rows))} {what} with the most wrong pixels at 0.5")
    for col in (key, *(("tiles",) if tiles else ()), "IoU %", "missed (FN)", "false (FP)",
                "% of all wrong"):
        w.add_column(col, justify="left" if col == key else "right")
    for r in sorted(rows, key=lambda r: -(r["fp"] + r["fn"]))[:n]:
        w.add_row(r[key], *((str(r["images"]),) if tiles else ()), _pct(r["iou"]),
                  str(r["fn"]), str(r["fp"]),
                  f"{100 * (r['fp'] + r['fn']) / wrong:.1f}" if wrong else "-")
    console.print(w)


def models_calibrate(
    name: str = typer.Argument(..., help="Model to calibrate (its card is rewritten)."),
    val_set: list[str] = typer.Option(
        None, "--val-set", help="Labelled validation set(s), repeatable: catalogue sets or a "
        "training hold-out such as deepcrack-train-holdout (rebuilt from the card); default: "
        "the card's labelled validation sets."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
    device: str = typer.Option("cpu"),
) -> None:
    """Fit the logit map that puts each validation set's best threshold in [0.3, 0.7] and
    store it in the model card (the weights are untouched)."""
    from engine.calibration import fit_calibration
    from engine.checkpoint import write_card
    from engine.data import DATASETS, load_dataset
    from engine.errors import DataNotFoundError, ImageReadError, ModelNotFoundError
    from engine.registry import find_card, load_model
    from engine.train import holdout_samples

    try:
        card = find_card(name, weights_dir)
        names = val_set or [n for n in card.get("validation_data", {})
                            if (n in DATASETS and not DATASETS[n].negatives)
                            or n.endswith("-holdout")]
        if not names:
            raise ValueError(f"{name}'s card names no labelled catalogue validation set; give "
                             f"--val-set, e.g. --val-set uav75-val --val-set rockfracture-val.")
        for n in names:
            if n in DATASETS and DATASETS[n].negatives:
                raise ValueError(f"{n} has no crack pixels, so no best threshold: give labelled "
                                 f"validation sets.")
        net = load_model(name, weights_dir=weights_dir, device=device)
        sets = {n: (holdout_samples(n, card.get("training", {}), data_root)
                    if n.endswith("-holdout") else load_dataset(n, data_root)[0])
                for n in names}
        cal = fit_calibration(net, sets, device)
    except (ValueError, DataNotFoundError, ImageReadError, ModelNotFoundError) as exc:
        _fail(exc)
    cal["command"] = command_line()
    path = Path(card.pop("_card_path"))
    card["calibration"] = cal
    card["threshold"] = 0.5
    write_card(card, path)
    t = Table(title=f"{name}: scale {cal['scale']}, bias {cal['bias']}")
    for col in ("validation set", "best threshold before", "after"):
        t.add_column(col, justify="left" if col == "validation set" else "right")
    for n, raw in cal["raw_ods_threshold"].items():
        t.add_row(n, f"{raw:.3f}", f"{cal['calibrated_ods_threshold'][n]:.3f}")
    console.print(t)
    console.print(f"calibration written to {path}")


def models_card(
    names: list[str] = typer.Argument(None, help="Model names (default: all)."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    write: Path | None = typer.Option(None, help="Write the Markdown here instead of printing."),
) -> None:
    """Render model cards as Markdown from their JSON cards (measured numbers only)."""
    from engine.errors import ModelNotFoundError
    from engine.registry import find_card, list_cards, render_model_card

    try:
        cards = [find_card(n, weights_dir) for n in names] if names else list_cards(weights_dir)
    except ModelNotFoundError as exc:
        _fail(exc)
    text = "# CrackWatch model cards\n\nGenerated by `crackwatch models card --write " \
           "engine/weights/MODEL_CARD.md` from the JSON cards beside the weights.\n\n" + \
           "\n".join(render_model_card(c) for c in cards)
    if write:
        write.write_text(text)
        console.print(f"wrote {write}")
    else:
        console.print(text, markup=False, highlight=False)


def models_list(
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    as_json: bool = typer.Option(False, "--json", help="Print the cards as JSON."),
) -> None:
    """Shipped (and user) models with their architecture, size and measured metrics.

    "serves": the site profile the model's card says it serves; "default for": the profiles
    whose sites use it unless they name a model of their own (``crackwatch site set-model``).
    """
    from engine.registry import PROFILE_MODELS, list_cards

    cards = list_cards(weights_dir)
    if as_json:
        console.print_json(json.dumps(cards))
        return
    if not cards:
        console.print("No models found. Train one with `crackwatch train segment`.")
        return
    t = Table(title="CrackWatch models (IoU and FPR in %, test splits, threshold 0.5)")
    for col in ("name", "serves", "default for", "arch / encoder", "MB", "DeepCrack IoU",
                "UAV75 IoU", "planking FPR", "train min"):
        t.add_column(col, no_wrap=col == "name",
                     justify="left" if col in ("name", "serves", "default for") else "right")
    for c in cards:
        tm = c.get("metrics", {})
        dc, uav = tm.get("deepcrack-test", {}), tm.get("uav75-test", {})
        a = c["architecture"]
        default_for = [p for p, name in sorted(PROFILE_MODELS.items()) if name == c["name"]]
        t.add_row(c["name"], c.get("site_profile") or "-", ", ".join(default_for) or "-",
                  f"{a['family']} / {a['encoder']}",
                  f"{c['weights']['bytes'] / 1e6:.1f}",
                  _pct(dc.get("at_0.5", {}).get("iou")), _pct(uav.get("at_0.5", {}).get("iou")),
                  _pct(uav.get("at_0.5", {}).get("planking_fpr")),
                  f"{c.get('training', {}).get('minutes', '?')}")
    console.print(t)
    _list_unsupervised()


def _list_unsupervised() -> None:
    """The shipped unsupervised detectors (issue 29, :mod:`engine.anomaly_registry`)."""
    from engine.anomaly_registry import ANOMALY_DETECTORS, AnomalyWeightsError, anomaly_card

    t = Table(title="Unsupervised detectors (fitted on crack-free imagery only; not used for "
                    "cracks or alert levels; figures: crackwatch evaluate --suite unsupervised)")
    for col in ("name", "method", "MB", "fit s", "threshold rule"):
        t.add_column(col, no_wrap=col == "name",
                     justify="right" if col in ("MB", "fit s") else "left")
    for name in ANOMALY_DETECTORS:
        try:
            c = anomaly_card(name)
        except AnomalyWeightsError:
            continue
        fit = c.get("train_seconds", c.get("fit_and_calibrate_seconds"))
        t.add_row(name, c.get("method", "?"), f"{c.get('bytes', 0) / 1e6:.1f}",
                  "-" if fit is None else f"{fit:.0f}", str(c.get("threshold_rule", "-")))
    if t.row_count:
        console.print(t)


def models_table(
    write: Path | None = typer.Option(None, help="Replace the generated table in this file "
                                      "(e.g. README.md) instead of printing it."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
) -> None:
    """The README's model table (field suite per shipped model), from the cards only."""
    from engine.registry import FIELD_TABLE_END, FIELD_TABLE_START, list_cards, render_field_table

    table = render_field_table(list_cards(weights_dir))
    if write is None:
        console.print(table, markup=False, highlight=False, soft_wrap=True)
        return
    text = write.read_text()
    a, b = text.find(FIELD_TABLE_START), text.find(FIELD_TABLE_END)
    if a < 0 or b < a:
        _fail(ValueError(f"{write} has no generated model table to replace; put the two "
                         f"marker lines ({FIELD_TABLE_START} ... {FIELD_TABLE_END}) where it "
                         f"goes."))
    write.write_text(text[:a] + table + text[b + len(FIELD_TABLE_END):])
    console.print(f"model table written to {write}")


def models_export(
    name: str = typer.Argument(..., help="Model to export (see `crackwatch models list`)."),
    out: Path = typer.Option(..., "--out", help="The file to write, e.g. crack.onnx."),
    fmt: str = typer.Option("onnx", "--format", help="onnx: an ONNX model with the metadata "
                            "the QGIS plugin Deepness reads."),
    tile_size: int = typer.Option(512, min=32, help="Tile side, px (multiple of 32; Deepness "
                                  "needs a fixed square tile)."),
    overlap: int = typer.Option(64, min=0, help="Tile overlap, px (written in percent)."),
    resolution_cm: float | None = typer.Option(
        None, help="Ground resolution the model should run at, cm/px (Deepness resamples the "
        "layer to it). Default: an assumed GSD for the model's site profile (structure 0.025, "
        "slope 0.25); give your imagery's."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
) -> None:
    """Export a model for QGIS (Deepness): probabilities with the calibration folded in, and
    its tiling, threshold, resolution and standardisation as metadata."""
    from engine.errors import ModelCardError, ModelNotFoundError, WeightsIntegrityError
    from engine.export import export_for_deepness
    from engine.registry import load_model

    if fmt != "onnx":
        _fail(ValueError(f"--format {fmt!r}: the only export format is onnx."))
    try:
        net = load_model(name, weights_dir=weights_dir, runtime="torch")
        meta = export_for_deepness(net, out, tile_size=tile_size, overlap_px=overlap,
                                   resolution_cm=resolution_cm)
    except (ModelNotFoundError, WeightsIntegrityError, ModelCardError, ValueError,
            OSError) as exc:
        _fail(exc)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {meta['model_type']} "
                  f"'{meta['class_names']['1']}', tiles {meta['tiles_size']} px with "
                  f"{meta['tiles_overlap']} % overlap, threshold {meta['seg_thresh']}, "
                  f"{meta['resolution']} cm/px ({meta['crackwatch_resolution_source']}).",
                  markup=False, soft_wrap=True)
    console.print("In QGIS: Deepness > Model file: this file; the parameters load from it.",
                  markup=False)


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    """Add ``evaluate`` to the main app and the model commands to its ``models`` group."""
    app.command("evaluate")(evaluate)
    models_app.command("table")(models_table)
    models_app.command("calibrate")(models_calibrate)
    models_app.command("card")(models_card)
    models_app.command("list")(models_list)
    models_app.command("export")(models_export)
