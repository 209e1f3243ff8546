"""Writing and reading safetensors checkpoints with their JSON model card.

A checkpoint is two files side by side: ``NAME.safetensors`` (fp16 weights; integer buffers
kept as they are) and ``NAME.json`` (the model card). The card records the weights' SHA-256;
loading checks it. safetensors never unpickles, so a weights file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fp16_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state dict with floating tensors cast to float16, contiguous, on
    CPU (integer buffers are copied too: a CPU model's own tensors would otherwise keep
    changing inside a saved "best epoch" state)."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        v = v.to(torch.float16) if v.is_floating_point() else v.clone()
        out[k] = v.contiguous()
    return out


def save_checkpoint(state: dict[str, torch.Tensor], card: dict, out_dir: Path) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` into ``out_dir``; returns the card path.

    Fills ``card["weights"]`` with the file name, SHA-256, dtype and size in bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = card["name"]
    wpath = out_dir / f"{name}.safetensors"
    save_file(state, str(wpath), metadata={"format": "pt", "name": name})
    card["weights"] = {
        "file": wpath.name,
        "sha256": sha256_file(wpath),
        "dtype": "float16",
        "bytes": wpath.stat().st_size,
    }
    cpath = out_dir / f"{name}.json"
    write_card(card, cpath)
    return cpath


def write_card(card: dict, path: Path) -> None:
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file to float32 (floating tensors) on CPU."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
