"""``crackwatch train tiles``: seed 004's transfer table for a crack / no-crack tile classifier
(:mod:`engine.tile_classifier`), and the best of its three starts written as a tile gate."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from jobs.cli.common import _fail, command_line, console


def train_tiles(
    steps: int = typer.Option(600, min=1, help="Optimiser steps of each slope run."),
    concrete_steps: int | None = typer.Option(None, min=1, help="Steps of the concrete stage "
                                              "(default: --steps)."),
    batch_size: int = typer.Option(32, min=2, help="Tiles per step, half of each class."),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    limit: int | None = typer.Option(None, help="Only the first N images of each set (smoke "
                                     "runs)."),
    data_root: Path | None = typer.Option(None, help="Folder holding segmentation/ and geo/ "
                                          "(default ../shared/data)."),
    out_dir: Path = typer.Option(Path("runs/tiles"), help="Where the table, weights and card "
                                 "are written."),
) -> None:
    """Train the tile classifier from random init, ImageNet and ImageNet -> concrete, score
    each on slope test tiles next to the seed paper's LeNet5 row, and write the best as
    crackwatch-tilecls-lite0-slope (fp16 safetensors + card)."""
    from engine.checkpoint import save_checkpoint
    from engine.errors import DataNotFoundError, ImageReadError, PretrainedWeightsError
    from engine.tile_classifier import GATE_NAME, transfer_table
    from engine.train import git_sha, hardware

    sha = git_sha()
    try:
        report, runs = transfer_table(data_root=data_root, steps=steps,
                                      concrete_steps=concrete_steps, batch_size=batch_size,
                                      limit=limit, threads=threads)
    except (DataNotFoundError, ImageReadError, PretrainedWeightsError, ValueError) as exc:
        _fail(exc)
    report.update(command=command_line(), git_sha=sha, hardware=hardware("cpu"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tile_transfer_table.json").write_text(json.dumps(report, indent=2) + "\n")
    t = Table(title="Slope tiles, test split: crack / no-crack accuracy")
    for col in ("start", "accuracy", "balanced acc.", "rock tiles only (bal.)", "precision",
                "recall", "min"):
        t.add_column(col)
    t.add_row(f"seed paper, {report['seed_table']['model']}: no transfer / transfer",
              f"{100 * report['seed_table']['without_transfer']:.1f} / "
              f"{100 * report['seed_table']['with_transfer']:.1f}", "-", "-", "-", "-", "-")
    for r in report["rows"]:
        t.add_row(r["start"], f"{100 * r['accuracy']:.1f}", f"{100 * r['balanced_accuracy']:.1f}",
                  f"{100 * r['rock_tiles_only']['balanced_accuracy']:.1f}",
                  f"{100 * r['precision']:.1f}", f"{100 * r['recall']:.1f}", f"{r['minutes']}")
    console.print(t)
    # the start chosen on validation, not test: best validation balanced accuracy
    best_key = max(("random", "imagenet", "state"),
                   key=lambda k: max(h["val_balanced_accuracy"] for h in runs[k].history))
    best_row = report["rows"][("random", "imagenet", "state").index(best_key)]
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in runs[best_key].best_state.items()}
    card = {"name": GATE_NAME, "version": "1",
            "task": "crack / no-crack classification of 128 px tiles (a tile gate)",
            "architecture": {"family": "tile-classifier", "encoder": "efficientnet-lite0",
                             "head": "global average pool, dropout 0.2, linear -> 1 logit",
                             "input": "(B, 3, 128, 128) RGB, ImageNet-normalised",
                             "output": "(B,) logits; sigmoid gives P(tile shows a crack)"},
            "start": best_row["start"], "chosen_on": "best validation balanced accuracy",
            "threshold": 0.5, "test": {k: v for k, v in best_row.items() if k != "history"},
            "table": report, "limitations": (
                "Slope tiles are rock-face fracture photos (rockfracture, AGPL-3.0) and crack-"
                "free terrain cells of one beach survey: the no-crack class is mostly another "
                "site, so the rock-tiles-only figure is the honest one. No soil or landslide "
                "crack tiles exist here: accuracy on them is unknown.")}
    save_checkpoint(state, card, out_dir)
    console.print(f"wrote {out_dir / 'tile_transfer_table.json'} and {GATE_NAME} "
                  f"({best_row['start']}, chosen on validation)")


def register(train_app: typer.Typer) -> None:
    train_app.command("tiles")(train_tiles)
