"""``crackwatch bench runtimes``: do ONNX Runtime and OpenVINO give the same cracks as PyTorch
on real imagery, and how fast is each end to end (:func:`compare_runtimes`).

The sets: the shipped test images of DeepCrack, UAV75 and rockfracture (``../shared/data``)
and the demo's own imagery (``jobs/demo_data``: the Mt Agung DJI photo, the UAV75 bridge
photos and growth source, the rock-cut photos, the WebODM orthophoto). Each image runs
through :func:`engine.infer.predict_image` as the survey step does (512 px tiles, 64 px
overlap) once per runtime; the rule (:func:`same_cracks`) is checked per image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


def mask_agreement(reference: np.ndarray, other: np.ndarray,
                   threshold: float = 0.5) -> dict[str, float]:
    """How far two probability maps ``(rows, cols)`` of one image give the same cracks at
    ``threshold``: ``iou`` of the two crack masks (1.0 when both are empty),
    ``flipped_fraction`` of valid pixels on different sides of the threshold, and the largest
    probability difference. NaN pixels (nodata) are left out."""
    valid = ~(np.isnan(reference) | np.isnan(other))
    a = (reference >= threshold) & valid
    b = (other >= threshold) & valid
    union = int((a | b).sum())
    flipped = int((a ^ b).sum())
    return {"iou": 1.0 if union == 0 else float((a & b).sum()) / union,
            "flipped_fraction": flipped / max(1, int(valid.sum())),
            "crack_pixels": int(a.sum()), "flipped_pixels": flipped,
            "max_probability_difference": float(np.nanmax(np.abs(reference - other)))
            if valid.any() else 0.0}


#: The identity rule of issue 27: per image, crack-mask IoU >= 0.999 and at most 0.01 % of
#: pixels flipping at the threshold against PyTorch.
SAME_CRACKS_MIN_IOU = 0.999
SAME_CRACKS_MAX_FLIPPED = 1e-4


def same_cracks(agreement: dict[str, float]) -> bool:
    """Whether :func:`mask_agreement` figures meet :data:`SAME_CRACKS_MIN_IOU` and
    :data:`SAME_CRACKS_MAX_FLIPPED`."""
    return (agreement["iou"] >= SAME_CRACKS_MIN_IOU
            and agreement["flipped_fraction"] <= SAME_CRACKS_MAX_FLIPPED)


def compare_runtimes(model, images, runtimes: list[str], *, threshold: float = 0.5,
                     tile_size: int = 512, overlap: int = 64) -> dict[str, list[dict]]:
    """Each image through :func:`engine.infer.predict_image` in PyTorch and in each of
    ``runtimes``: ``{runtime: [mask_agreement + {"image", "same", "seconds"}, ...]}`` and
    ``{"torch": [{"image", "seconds"}, ...]}``. ``images``: ``(name, (rows, cols, 3) uint8)``
    pairs. The model's own runtime choice is restored afterwards.

    Raises:
        RuntimeUnavailableError: a runtime is not installed.
    """
    import time

    from engine.infer import predict_image
    from engine.runtime import set_runtime

    before = getattr(model, "runtime", "torch")
    out: dict[str, list[dict]] = {"torch": [], **{r: [] for r in runtimes if r != "torch"}}
    try:
        for name, rgb in images:
            set_runtime(model, "torch")
            t = time.perf_counter()
            ref = predict_image(rgb, model, tile_size=tile_size, overlap=overlap)
            out["torch"].append({"image": name, "seconds": time.perf_counter() - t})
            for rt in out:
                if rt == "torch":
                    continue
                set_runtime(model, rt)
                t = time.perf_counter()
                got = predict_image(rgb, model, tile_size=tile_size, overlap=overlap)
                agreement = mask_agreement(ref, got, threshold)
                out[rt].append({"image": name, **agreement, "same": same_cracks(agreement),
                                "seconds": time.perf_counter() - t})
    finally:
        set_runtime(model, before)
    return out


#: The sets ``bench runtimes`` knows, in report order.
IDENTITY_SETS = ("deepcrack-test", "uav75-test", "rockfracture-test", "demo")


def demo_images() -> Iterator[tuple[str, np.ndarray]]:
    """The demo's camera imagery as ``(name, (rows, cols, 3) uint8)``: every JPEG under
    ``jobs/demo_data`` and the RGB bands of the WebODM orthophoto."""
    import rasterio
    from PIL import Image

    from jobs.demo import DEMO_DATA

    for path in sorted(p for p in DEMO_DATA.rglob("*") if p.suffix.lower() in (".jpg",
                                                                                ".jpeg")):
        yield str(path.relative_to(DEMO_DATA)), np.asarray(Image.open(path).convert("RGB"))
    ortho = DEMO_DATA / "webodm" / "orthophoto.tif"
    with rasterio.open(ortho) as src:
        yield str(ortho.relative_to(DEMO_DATA)), np.ascontiguousarray(
            np.moveaxis(src.read([1, 2, 3]), 0, -1).astype(np.uint8))


def identity_images(name: str, data_root: Path | None = None, limit: int | None = None,
                    step: int = 1) -> list[tuple[str, np.ndarray]]:
    """The images of set ``name`` (:data:`IDENTITY_SETS`): every ``step``-th, at most
    ``limit``.

    Raises:
        ValueError: an unknown set. DataNotFoundError: the shared data is missing.
    """
    from engine.data import load_dataset

    if name not in IDENTITY_SETS:
        raise ValueError(f"unknown set {name!r}; choose from {', '.join(IDENTITY_SETS)}.")
    if name == "demo":
        images = list(demo_images())
    else:
        images = [(s.stem, s.image) for s in load_dataset(name, data_root)[0]]
    images = images[::step]
    return images[:limit] if limit else images


def bench_runtimes(models: list[str], sets: list[str], runtimes: list[str], *,
                   data_root: Path | None = None, limit: int | None = None,
                   progress=None) -> list[dict]:
    """One row per model x set x runtime: images, how many meet the same-cracks rule, the
    lowest IoU, the largest flipped share and probability difference, and the end-to-end
    megapixels/s of ``predict_image`` (PyTorch's row too, as the reference)."""
    import platform

    from engine.registry import load_model
    from engine.runtime import default_threads

    rows = []
    for model_name in models:
        model = load_model(model_name, runtime="torch")
        for set_name in sets:
            images = identity_images(set_name, data_root, limit)
            if progress:
                progress(f"{model_name} on {set_name}: {len(images)} images")
            mp = sum(img.shape[0] * img.shape[1] for _, img in images) / 1e6
            res = compare_runtimes(model, images, runtimes)
            for rt, per_image in res.items():
                seconds = sum(r["seconds"] for r in per_image)
                row = {"model": model_name, "set": set_name, "runtime": rt,
                       "images": len(per_image), "megapixels": round(mp, 2),
                       "megapixels_per_s": round(mp / seconds, 3) if seconds else 0.0}
                if rt != "torch":
                    row.update({
                        "same_cracks": sum(r["same"] for r in per_image),
                        "min_iou": min(r["iou"] for r in per_image),
                        "max_flipped_percent": 100 * max(r["flipped_fraction"]
                                                         for r in per_image),
                        "max_probability_difference": max(r["max_probability_difference"]
                                                          for r in per_image),
                        "not_same": [r["image"] for r in per_image if not r["same"]]})
                rows.append(row)
    for row in rows:
        row["machine"] = f"{platform.machine()}, {default_threads()} threads"
    return rows
