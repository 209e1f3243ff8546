"""Throughput benchmark of a model's forward pass (figures are printed, never asserted)."""

from __future__ import annotations

import os
import platform
import resource
import time

import torch
from torch import nn

from engine.allocator import allocator_status
from engine.models import forward_proba, inference_module
from engine.runtime import module_for_inference


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def cpu_figures(start: tuple[float, float], wall_s: float | None = None) -> dict:
    """User and system CPU seconds since ``start`` (from :func:`_cpu_seconds`) and the
    system share of CPU time (``sys / (user + sys)``: time in the kernel, mostly page faults
    of freshly mapped memory; issue 14's target is <= 0.10)."""
    user, sys_ = (b - a for a, b in zip(start, _cpu_seconds(), strict=True))
    out = {"user_s": round(user, 2), "sys_s": round(sys_, 2),
           "sys_share_of_cpu": round(sys_ / (user + sys_), 3) if user + sys_ > 0 else 0.0}
    if wall_s is not None:
        out["wall_s"] = round(wall_s, 2)
    return out


def bench_model(
    model: nn.Module,
    *,
    tile_size: int = 512,
    batch_size: int = 8,
    iterations: int = 5,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    tta: bool = False,
    runtimes: list[str] | None = None,
    flops: bool = True,
) -> dict:
    """Time ``iterations`` forward passes of a ``(batch_size, 3, tile_size, tile_size)`` batch.

    The model runs as tiled inference runs it (:func:`engine.runtime.module_for_inference`);
    the unfused model is timed too (``megapixels_per_s_unfused``) and each of ``runtimes``
    (``megapixels_per_s_by_runtime``; ``torch`` is the folded module), round-robin, one batch
    each per round, medians. ``tta``: the four flip passes. ``flops``: the figures of
    :func:`hardware_figures` (``percent_of_matmul_peak``: how close the best runs to the
    hardware). Also: seconds per batch, user/system CPU seconds and system share, peak RSS
    (MiB), peak GPU memory on CUDA (fp16 autocast there, as in production), the machine.

    Raises:
        RuntimeUnavailableError: a runtime in ``runtimes`` is not installed or not for
            ``device``.
    """
    from engine.runtime import RUNTIMES

    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, tile_size, tile_size, device=device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    ctx = torch.autocast("cuda", dtype=torch.float16) if cuda else torch.autocast("cpu",
                                                                                 enabled=False)
    net = module_for_inference(model, device)
    same_as_inference = getattr(net, "runtime", "torch")
    variants = _variants(model, net, x, runtimes or [], device)
    with torch.inference_mode(), ctx:
        times, cpu = _round_robin(variants, warmup, iterations, tta, device)
    mp = batch_size * tile_size**2 / 1e6
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    user, sys_ = cpu["inference"]
    out = {
        "tile_size": tile_size,
        "batch_size": batch_size,
        "iterations": iterations,
        "tta": tta,
        "runtime": getattr(net, "runtime", "torch"),
        "conv_bn_folded_channels_last": net is not model and getattr(net, "channels_last",
                                                                     True),
        "seconds_per_batch_median": round(med["inference"], 4),
        "megapixels_per_s": round(mp / med["inference"], 3),
        "user_s": round(user, 2), "sys_s": round(sys_, 2),
        "sys_share_of_cpu": round(sys_ / (user + sys_), 3) if user + sys_ > 0 else 0.0,
    }
    if "unfused" in med:
        u_user, u_sys = cpu["unfused"]
        out["megapixels_per_s_unfused"] = round(mp / med["unfused"], 3)
        out["sys_share_of_cpu_unfused"] = round(u_sys / (u_user + u_sys), 3) \
            if u_user + u_sys > 0 else 0.0
    by_rt = {k.split(":", 1)[1]: round(mp / v, 3) for k, v in med.items()
             if k.startswith("runtime:")}
    if runtimes:
        by_rt[same_as_inference] = out["megapixels_per_s"]
        by_rt = {k: by_rt[k] for k in RUNTIMES if k in by_rt}
    if by_rt:
        out["megapixels_per_s_by_runtime"] = by_rt
        if "unfused" in med:
            out["speedup_over_unfused_torch"] = {
                k: round(v / out["megapixels_per_s_unfused"], 2) for k, v in by_rt.items()}
    if flops:
        best = max([out["megapixels_per_s"], *by_rt.values()]) * (4 if tta else 1)
        out.update(hardware_figures(model, best, min(tile_size, 256), device))
    out["allocator"] = allocator_status()
    return {**out, **_machine(device)}


def _variants(model: nn.Module, net, x: torch.Tensor, runtimes: list[str],
              device: torch.device) -> dict[str, tuple]:
    """``{key: (callable, input)}`` to time: ``inference`` (``net``, as tiled inference runs
    the model), ``unfused`` (the model itself, when ``net`` is not it) and
    ``runtime:NAME`` for each of ``runtimes`` other than ``net``'s own.

    Raises:
        RuntimeUnavailableError: a runtime is not installed or not for ``device``.
    """
    from engine.runtime import build_runtime_module, resolve_runtime

    variants: dict[str, tuple] = {"inference": (net, _input_for(net, model, x))}
    if net is not model:
        variants["unfused"] = (model, x)
    for name in runtimes:
        rt = resolve_runtime(name, device)
        if rt == getattr(net, "runtime", "torch"):
            continue  # the inference variant itself: its figure is reported under rt
        if rt == "torch":
            folded = inference_module(model, device)
            variants[f"runtime:{rt}"] = (folded, _input_for(folded, model, x))
        else:
            variants[f"runtime:{rt}"] = (build_runtime_module(model, rt), x)
    return variants


def _round_robin(variants: dict[str, tuple], warmup: int, iterations: int, tta: bool,
                 device: torch.device) -> tuple[dict[str, list[float]], dict[str, tuple]]:
    """Seconds per pass and (user, sys) CPU seconds summed, of each variant ``(callable,
    input)``, one pass each per round, ``iterations`` rounds after ``warmup``."""
    cuda = device.type == "cuda"
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, tuple[float, float]] = {k: (0.0, 0.0) for k in variants}
    for i in range(warmup + iterations):
        for key, (fn, xb) in variants.items():
            if cuda:
                torch.cuda.synchronize(device)
            c0, t = _cpu_seconds(), time.perf_counter()
            forward_proba(fn, xb, tta)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[key].append(time.perf_counter() - t)
                c1 = _cpu_seconds()
                cpu[key] = tuple(a + (b1 - b0) for a, b0, b1 in zip(cpu[key], c0, c1,
                                                                      strict=True))
    return times, cpu


def _input_for(net, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` as ``net`` wants it: channels_last for a folded PyTorch module, plain NCHW for
    the model itself and for a runtime module."""
    if net is not model and getattr(net, "channels_last", True):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def hardware_figures(model: nn.Module, megapixels_per_s: float, side: int,
                     device: torch.device) -> dict:
    """How close ``megapixels_per_s`` of forward passes is to the hardware: the model's
    GFLOPs per MP (:func:`model_gflops_per_megapixel`), the measured matmul peak
    (:func:`matmul_peak_gflops`), the GFLOP/s achieved and its percentage of the peak."""
    gflop_mp = model_gflops_per_megapixel(model, side)
    peak = matmul_peak_gflops(device)
    return {"gflops_per_megapixel": round(gflop_mp, 2), "matmul_peak_gflops": round(peak, 1),
            "achieved_gflops_best": round(megapixels_per_s * gflop_mp, 1),
            "percent_of_matmul_peak": round(100 * megapixels_per_s * gflop_mp / peak, 1)}


def model_gflops_per_megapixel(model: nn.Module, side: int = 256) -> float:
    """GFLOPs of one forward pass per megapixel of input, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` on a ``(1, 3, side, side)`` input
    (convolutions and matmuls; a multiply-add is 2 FLOPs; element-wise ops not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    dev = next(model.parameters()).device
    x = torch.zeros(1, 3, side, side, device=dev)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)


def matmul_peak_gflops(device: str | torch.device = "cpu", n: int = 2048,
                       repeats: int = 5) -> float:
    """The machine's measured fp32 peak: GFLOP/s of the best of ``repeats`` ``n x n`` matrix
    products (``2 n^3`` FLOPs each) with PyTorch's threads; fp16 on CUDA, as inference runs."""
    device = torch.device(device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _machine(device: torch.device) -> dict:
    """Peak RSS (MiB), device, a description of the machine and, on CUDA, peak GPU memory."""
    out = {
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": str(device),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{torch.get_num_threads()} torch threads, torch {torch.__version__}",
    }
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out["machine"] += f", {torch.cuda.get_device_name(device)}"
    return out


def write_synthetic_orthomosaic(path, size: int, *, seed: int = 0, block: int = 512) -> None:
    """A ``size x size`` RGB tiled GeoTIFF (EPSG:32633, 0.01 m pixels) of textured grey with
    dark random-walk lines, written block by block (memory independent of ``size``).

    SYNTHETIC: for benchmarks only; the name of every file it writes should say so.
    """
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": from_origin(500000, 5000000, 0.01, 0.01),
               "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.update_tags(SYNTHETIC="yes: benchmark raster, not camera imagery")
        for r in range(0, size, block):
            for c in range(0, size, block):
                h, w = min(block, size - r), min(block, size - c)
                tile = rng.normal(170, 12, (3, h, w)).clip(0, 255).astype(np.uint8)
                y = int(rng.integers(0, h))
                tile[:, max(0, y - 1):y + 2, :] = 40  # a dark crack-like line per block
                dst.write(tile, window=Window(c, r, w, h))


def _bench_infer_child(path: str, model_name: str, tile_size: int, overlap: int,
                       batch_size: int, device: str, threads: int | None,
                       runtime: str | None = "auto") -> dict:
    import tempfile
    from pathlib import Path

    from engine.registry import load_model
    from engine.survey import InferenceSettings, infer_orthomosaic

    if threads:
        torch.set_num_threads(threads)
    model = load_model(model_name, device=device, runtime=runtime)
    settings = InferenceSettings(tile_size=tile_size, overlap=overlap, batch_size=batch_size,
                                 device=device)
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu_seconds()
        res = infer_orthomosaic(path, model, settings, out_path=Path(tmp) / "prob.tif",
                                progress=False, vectorise=False).prediction
        cpu = cpu_figures(cpu0)
    tile_mp_s = res.processed_megapixels / res.seconds
    return {
        "raster_px": f"{res.width}x{res.height}",
        "batch_size": res.batch_size,
        "seconds": res.seconds,
        "raster_megapixels_per_s": res.megapixels_per_s,
        "tile_megapixels_per_s_end_to_end": round(tile_mp_s, 3),
        "tile_megapixels_per_s_model_forward": round(res.model_megapixels_per_s, 3),
        "end_to_end_over_forward": round(tile_mp_s / res.model_megapixels_per_s, 3),
        "windows": res.windows_total,
        "runtime": getattr(model, "runtime", "torch"),
        **cpu,
        "allocator": allocator_status(),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_infer(sizes: list[int], model_name: str, *, workdir, tile_size: int = 512,
                overlap: int = 64, batch_size: int | None = None, device: str = "cpu",
                threads: int | None = None, runtime: str | None = "auto") -> list[dict]:
    """End-to-end figures of the survey step's prediction (:func:`engine.survey.
    infer_orthomosaic` without vectorising: :func:`engine.infer.predict_raster` and the
    rename into place) on synthetic square rasters of each size.

    Each size runs in a fresh process, so ``peak_rss_mib`` (``ru_maxrss``) is that raster's own
    peak. ``end_to_end_over_forward`` = end-to-end tile megapixels/s divided by model-forward
    megapixels/s over the same tiles (1.0 = reading, blending and writing cost nothing).
    ``runtime``: what runs the model (:func:`engine.runtime.resolve_runtime`).
    """
    import multiprocessing as mp
    from pathlib import Path

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    ctx = mp.get_context("spawn")
    for size in sizes:
        path = workdir / f"synthetic_benchmark_{size}.tif"
        if not path.exists():
            write_synthetic_orthomosaic(path, size)
        with ctx.Pool(1) as pool:
            row = pool.apply(_bench_infer_child, (str(path), model_name, tile_size, overlap,
                                                  batch_size, device, threads, runtime))
        row["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, device {device}, "
                          f"torch {torch.__version__}")
        rows.append(row)
    return rows


def bench_train(
    *,
    augment: str = "per-crop",
    batch_size: int = 16,
    crop_size: int = 256,
    steps: int = 20,
    warmup: int = 3,
    workers: int = 0,
    device: str | torch.device = "cpu",
    data_root=None,
    max_images_per_set: int | None = None,
    encoder: str | None = None,
    encoder_depth: int | None = None,
) -> dict:
    """Training throughput on the default training mix: crops/s of the augmentation alone and
    of whole training steps (augmentation, forward, backward, Adam) of the default U-Net, or
    with another ``encoder`` / ``encoder_depth`` (as in ``train segment``).

    ``augment``: ``"per-crop"`` (torchvision per crop, ``workers`` DataLoader processes) or
    ``"batched"`` (:class:`engine.batch_augment.BatchCropSampler` on ``device``). Figures are
    medians over ``steps`` after ``warmup``; printed, never asserted.
    """
    from pathlib import Path

    from engine.data import default_data_root
    from engine.train import (
        DEFAULT_WEIGHTS,
        TrainConfig,
        _load,
        model_architecture,
        training_batches,
        zoom_range_for,
    )

    if augment not in ("per-crop", "batched"):
        raise ValueError(f"augment must be 'per-crop' or 'batched'; got {augment!r}.")
    device = torch.device(device)
    root = Path(data_root) if data_root else default_data_root()
    cfg = TrainConfig(batch_size=batch_size, crop_size=crop_size, workers=workers,
                      device=str(device), augment=augment,
                      samples_per_epoch=(warmup + steps) * batch_size, encoder=encoder,
                      encoder_depth=encoder_depth)
    arch = model_architecture(cfg)
    parts = [(_load(name, root, max_images_per_set), w, zoom_range_for(cfg, name))
             for name, w in DEFAULT_WEIGHTS.items()]
    batches = training_batches(cfg, parts)
    aug_s, _ = _timed_batches(batches, lambda b: None, device, warmup, steps)
    step_s, step_cpu = _timed_batches(batches, _train_step(arch, device), device, warmup, steps)
    return {
        "augment": augment,
        "encoder": arch["encoder"],
        "encoder_depth": arch.get("encoder_depth", 5),
        "workers": workers,
        "batch_size": batch_size,
        "crop_size": crop_size,
        "steps": steps,
        "images": {k: len(p[0]) for k, p in zip(DEFAULT_WEIGHTS, parts, strict=True)},
        "augment_crops_per_s": round(batch_size / aug_s, 1),
        "train_step_s_median": round(step_s, 4),
        "train_crops_per_s": round(batch_size / step_s, 1),
        "train_step_cpu": step_cpu,
        "sys_share_of_cpu": step_cpu["sys_share_of_cpu"],
        "allocator": allocator_status(),
        **_machine(device),
    }


def _timed_batches(batches, step_fn, device: torch.device, warmup: int,
                   steps: int) -> tuple[float, dict]:
    """Median seconds of fetching a batch of one epoch of ``batches()`` (a callable, as
    :func:`engine.train.training_batches` returns), moving it to ``device`` and running
    ``step_fn`` on it, over ``steps`` steps after ``warmup``; and :func:`cpu_figures` of those
    steps."""
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    times = []
    it = iter(batches())
    for i in range(warmup + steps):
        if i == warmup:
            cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        sync()
        t = time.perf_counter()
        batch = next(it)
        step_fn({k: v.to(device, non_blocking=True) for k, v in batch.items()})
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], cpu_figures(cpu0, time.perf_counter() - wall0)


def _train_step(arch: dict, device: torch.device):
    """A training step (Dice + BCE, Adam at lr 1e-4) of a fresh ``arch`` model on ``device``
    in channels-last layout, as a function of a batch dict (``image``, ``mask``, ``weight``).
    On CUDA, cuDNN autotuning is switched on and the peak-memory counter reset."""
    from engine.losses import dice_bce_loss
    from engine.models import build_model

    model = build_model(arch).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)

    def step(b):
        x = b["image"].contiguous(memory_format=torch.channels_last)
        loss = dice_bce_loss(model(x), b["mask"], b["weight"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step
