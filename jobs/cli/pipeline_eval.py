"""``crackwatch evaluate --suite field`` (its whole-pipeline tables) and ``crackwatch evaluate
--filter-sweep``: the pipeline after the model measured beside the model alone (issue 25;
:mod:`engine.pipeline_eval`)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from jobs.cli.common import command_line, console

__all__ = ["SWEEP_GRID", "print_pipeline", "run_filter_sweep"]

#: ``--filter-sweep``: (min skeleton length px, min elongation, min peak probability), 0 = off.
SWEEP_GRID = ((0, 0, 0), (30, 0, 0), (50, 0, 0), (100, 0, 0), (0, 6, 0), (0, 10, 0),
              (30, 6, 0), (50, 6, 0), (50, 10, 0), (100, 10, 0), (0, 0, 0.7), (0, 0, 0.75),
              (0, 0, 0.8), (50, 0, 0.7), (50, 0, 0.75), (50, 0, 0.78), (100, 0, 0.75),
              (50, 10, 0.7))


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def print_pipeline(model_name: str, profile: str, report: dict) -> None:
    """One table: each set, the model alone and the pipeline of ``profile``."""
    t = Table(title=f"{model_name}: model alone vs the {profile} pipeline (threshold, specks, "
                    f"edge band, vegetation, shape rules)")
    for col in ("set", "side", "IoU %", "length recall %", "crack px %", "cracks",
                "per MP"):
        t.add_column(col, justify="left" if col in ("set", "side") else "right", no_wrap=True)
    for name, sides in report["sets"].items():
        for side in ("model", "pipeline"):
            m = sides[side]
            t.add_row(name, side, _pct(m.get("iou")), _pct(m.get("length_recall")),
                      f"{m['crack_pixel_pct']:.3f}", str(m["components"]),
                      f"{m['components_per_mp']:.2f}")
    console.print(t)


def run_filter_sweep(model_name: str, net, profile: str, data_root: Path | None,
                     limit: int | None, device: str, out: Path | None,
                     tile_gate: bool = False) -> list[dict]:
    """Sweep :data:`SWEEP_GRID` on the profile's other rules; print and optionally write it."""
    from dataclasses import replace

    from engine.crack_rules import rules_for
    from engine.pipeline_eval import filter_sweep
    from geodata.crack_objects import ObjectFilter

    base = rules_for(profile, model_name)
    grid = [ObjectFilter(min_length_px=a, min_elongation=b, min_peak_probability=c)
            for a, b, c in SWEEP_GRID]
    rows = filter_sweep(net, replace(base, object_filter=ObjectFilter()), grid,
                        data_root=data_root, device=device, limit=limit, tile_gate=tile_gate)
    sets = [k for k in rows[0] if k != "filter"]
    t = Table(title=f"{model_name}, {profile} pipeline: object rules vs pooled IoU and recall "
                    f"of labelled crack length (%), and crack pixels and false cracks per MP on "
                    f"whole crack-free photos")
    t.add_column("min length px", justify="right")
    t.add_column("min elongation", justify="right")
    t.add_column("min peak prob.", justify="right")
    if tile_gate:
        t.add_column("tile gate")
    for s in sets:
        t.add_column(f"{s} {'crack px % / per MP' if s.startswith('brighton') else 'IoU / R'}",
                     justify="right")
    for r in rows:
        f = r["filter"]
        t.add_row(f"{f['min_length_px']:g}", f"{f['min_elongation']:g}",
                  f"{f['min_peak_probability']:g}",
                  *(["on" if f.get("tile_gate") else "-"] if tile_gate else []),
                  *[f"{r[s]['crack_pixel_pct']:.3f} / {r[s]['components_per_mp']:.2f}"
                    if s.startswith("brighton")
                    else f"{_pct(r[s].get('iou'))} / {_pct(r[s].get('length_recall'))}"
                    for s in sets])
    console.print(t)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": command_line(), "model": model_name,
                                   "profile": profile, "rows": rows}, indent=2) + "\n")
        console.print(f"report written to {out}")
    return rows
