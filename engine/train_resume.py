"""Resumable training runs (issue 26): the state :func:`engine.train.train_segmentation`
writes after every epoch (``<out-dir>/<name>.resume.pt``), reading it back, and the settings a
resumed run may change.

The checkpoint holds the model, optimiser, EMA, the sampler's generators, the torch / Python /
numpy (and CUDA) random-number states, the history, the best weights, steps and minutes: a
run killed and resumed with ``workers=0`` draws the same batches and ends with the same
weights as an uninterrupted one (tests/integration/test_training_real.py).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: A run's resumable state, written after every epoch beside the weights.
RESUME_SUFFIX = ".resume.pt"
RESUME_FORMAT = "crackwatch-train-resume-1"
#: Settings a resumed run may change (the machine it runs on, its budget); everything else
#: comes from the checkpoint so that the run goes on as it started.
RESUMABLE_OVERRIDES = ("max_minutes", "epochs", "patience", "threads", "device", "workers")


def resume_path(out_dir: Path, name: str) -> Path:
    """``<out_dir>/<name>.resume.pt``: the resumable state of training run ``name``."""
    return Path(out_dir) / f"{name}{RESUME_SUFFIX}"


def load_resume(out_dir: Path, name: str) -> dict:
    """The resumable state of run ``name`` in ``out_dir`` (``torch.load`` with
    ``weights_only=True``: tensors and plain containers only, no pickled code).

    Raises:
        FileNotFoundError: no checkpoint for ``name`` (says which file and how one is made).
        ValueError: the file is not a CrackWatch resume checkpoint.
    """
    path = resume_path(out_dir, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"No resume checkpoint {path}: a run writes one after each epoch into its --out-dir; "
            f"give the same --out-dir and the run's --name.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{path} is not a readable resume checkpoint ({exc}).") from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise ValueError(f"{path} is not a CrackWatch resume checkpoint ({RESUME_FORMAT}).")
    return state


def _rng_state() -> dict:
    n = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (n[0], torch.from_numpy(n[1].astype(np.int64)), int(n[2]), int(n[3]),
                      float(n[4])),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in st["python"]))
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    if st["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def restore(saved: dict, model: torch.nn.Module, ema: Any,
             opt: torch.optim.Optimizer, epoch_batches: Any, run: Any) -> None:
    """Load a resume checkpoint's state into a freshly built run."""
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    if ema is not None:
        if saved["ema"] is None:
            raise ValueError("The checkpoint has no EMA state but the run keeps one.")
        ema.module.load_state_dict(saved["ema"]["state"])
        ema.updates = saved["ema"]["updates"]
    epoch_batches.load_state_dict(saved["sampler"])
    _set_rng_state(saved["rng"])
    r = saved["run"]
    run.history, run.best, run.best_state = r["history"], r["best"], r["best_state"]
    run.best_epoch, run.bad_epochs = r["best_epoch"], r["bad_epochs"]
    run.clock.step, run.clock.offset_s = r["step"], r["elapsed_s"]
    run.resume_points = list(r["resume_points"])


