"""A smaller, pixel-identical copy of the training data, for a machine reached through a size
limit (e.g. a lent GPU machine that receives at most 64 MiB).

JPEG images are re-encoded losslessly with ``jpegtran -optimize -copy none`` (Huffman tables
optimised, metadata dropped; libjpeg-turbo's ``jpegtran`` where installed, else copied as they
are). PNG images become lossless WebP where that is smaller. Masks and planking masks are
copied. Every written image is decoded and compared with its source: a copy whose pixels differ
raises :class:`PackError`, so a packed copy trains exactly what the original would.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.data import DATASETS, dataset_samples, default_data_root, read_rgb
from engine.errors import EngineError

#: What ``crackwatch train segment`` reads by default: the training sets and UAV75's val split.
TRAINING_SETS = ("deepcrack-train", "uav75-train", "uav75-val", "masonry")


class PackError(EngineError, RuntimeError):
    """A packed image does not decode to its source's pixels."""


def _jpegtran() -> str | None:
    return shutil.which("jpegtran")


def _pack_image(src: Path, dst_dir: Path, jpegtran: str | None) -> Path:
    for old in dst_dir.glob(f"{src.stem}.*"):  # a re-run: one image per stem
        old.unlink()
    suffix = src.suffix.lower()
    if suffix in (".jpg", ".jpeg") and jpegtran:
        dst = dst_dir / src.name
        subprocess.run([jpegtran, "-optimize", "-copy", "none", "-outfile", str(dst), str(src)],
                       check=True, capture_output=True)
    elif suffix == ".png":
        dst = dst_dir / (src.stem + ".webp")
        with Image.open(src) as im:
            im.convert("RGB").save(dst, format="WEBP", lossless=True, quality=80, method=4)
    else:
        dst = dst_dir / src.name
        shutil.copy2(src, dst)
    if dst.stat().st_size >= src.stat().st_size:  # no gain: keep the original file
        dst.unlink()
        dst = dst_dir / src.name
        shutil.copy2(src, dst)
    if not np.array_equal(read_rgb(dst), read_rgb(src)):
        raise PackError(f"{dst} does not decode to the pixels of {src}; nothing else is "
                        f"affected, but do not train from {dst_dir}.")
    return dst


def pack_training_data(
    out_root: Path,
    data_root: Path | None = None,
    sets: Sequence[str] = TRAINING_SETS,
    progress: bool = True,
) -> dict:
    """Write a pixel-identical, smaller copy of ``sets`` under ``out_root`` (same layout as the
    data root, so ``--data-root out_root`` trains from it).

    Returns ``{"sets": {name: {"images", "bytes_before", "bytes_after"}}, "bytes_before",
    "bytes_after", "jpegtran"}`` (bytes of images and masks).

    Raises:
        ValueError: an unknown set name.
        DataNotFoundError, PairingError: the source data is missing or unpaired.
        PackError: a packed image decodes to other pixels than its source.
    """
    data_root = Path(data_root) if data_root else default_data_root()
    out_root = Path(out_root)
    jpegtran = _jpegtran()
    report = {"sets": {}, "bytes_before": 0, "bytes_after": 0, "jpegtran": jpegtran}
    for name in sets:
        if name not in DATASETS:
            raise ValueError(f"Unknown dataset {name!r}; choose from {', '.join(DATASETS)}.")
        if DATASETS[name].negatives:  # whole photos the reviewed cells are cut from
            from engine.negatives import FOLDER, NEGATIVE_SPLITS

            src = [data_root / FOLDER / f"{p}.JPG" for p in NEGATIVE_SPLITS[DATASETS[name].folder]]
            (out_root / FOLDER).mkdir(parents=True, exist_ok=True)
            for f in src:
                shutil.copy2(f, out_root / FOLDER / f.name)
            size = sum(f.stat().st_size for f in src)
            report["sets"][name] = {"images": len(src), "bytes_before": size, "bytes_after": size}
            report["bytes_before"] += size
            report["bytes_after"] += size
            continue
        paths, spec = dataset_samples(name, data_root)
        before = after = 0
        for p in tqdm(paths, desc=f"pack {name}", unit="img", disable=not progress):
            rel = p.image.parent.relative_to(data_root)
            img_dir = out_root / rel
            img_dir.mkdir(parents=True, exist_ok=True)
            dst = _pack_image(p.image, img_dir, jpegtran)
            before += p.image.stat().st_size
            after += dst.stat().st_size
            for m in (p.mask, p.planking):
                if m is None:
                    continue
                m_dst = out_root / m.relative_to(data_root)
                m_dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(m, m_dst)
                before += m.stat().st_size
                after += m_dst.stat().st_size
        report["sets"][spec.name] = {"images": len(paths), "bytes_before": before,
                                     "bytes_after": after}
        report["bytes_before"] += before
        report["bytes_after"] += after
    return report
