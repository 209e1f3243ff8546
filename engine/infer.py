"""Tiled inference over orthomosaics (GeoTIFF) and photos.

``predict_raster`` reads a raster in windows aligned to its blocks, batches them through a
segmentation model, blends overlapping windows with a smooth weight window and streams the
crack-probability map to a tiled, compressed Cloud-Optimized GeoTIFF in the raster's CRS and
transform. Windows that are entirely nodata/alpha are skipped. Memory is bounded by one row
of windows (``tile_size x cols`` accumulators) and the batch, never by the raster's rows.

``predict_image`` does the same for an in-memory photo ``(rows, cols, 3)`` uint8.

Band and dtype rules (:func:`engine.raster_read.select_rgb_bands` and ``stretch_limits``;
reading, CRS and reprojection live in :mod:`engine.raster_read`, windows and blending in
:mod:`engine.tiling`):

- bands whose colour interpretation is red/green/blue are used as RGB; otherwise the first
  three bands; a single band (or band + alpha) is replicated to grey RGB;
- validity comes from GDAL's dataset mask, which honours an alpha band, a nodata value and an
  internal mask band alike, less the white or black collar at the edge of the data
  (:func:`engine.collar.collar_mask`, on 8-bit data only: a stretch clips real ground to 0
  or 255), which is written as nodata too;
- 8-bit data is used as is; any other integer or float type is linearly stretched per band
  between its 2nd and 98th percentile over valid pixels of a decimated read (<= 1024 pixels on
  the long side), the default "cumulative count cut" of QGIS, then clipped to 0..255.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.allocator import release_free_memory
from engine.collar import collar_mask
from engine.data import normalise
from engine.models import SIZE_MULTIPLE, forward_proba
from engine.raster_read import (
    STRETCH_PERCENTILES,
    check_readable,
    open_raster,
    projected_reader,
    select_rgb_bands,
    source_crs,
    stretch_limits,
    to_uint8,
)
from engine.runtime import module_for_inference
from engine.tiling import RowBandBlender, aligned_stride, blend_weights, window_starts

#: GDAL block cache while reading/writing (MB): keeps memory flat for any raster size.
GDAL_CACHE_MB = 64


@dataclass
class PredictionResult:
    """What :func:`predict_raster` wrote.

    ``transform`` and ``crs`` are those of the output probability map (the input's, unless a
    geographic raster was reprojected, see ``reprojected_from``).
    """

    path: Path
    crs: str
    transform: tuple[float, ...]
    width: int
    height: int
    dtype: str
    windows_total: int
    windows_skipped: int
    seconds: float
    model_seconds: float
    megapixels_per_s: float
    processed_megapixels: float = 0.0
    batch_size: int = 0
    reprojected_from: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def model_megapixels_per_s(self) -> float:
        """Megapixels/s of the model forward pass alone over the processed windows."""
        return self.processed_megapixels / self.model_seconds if self.model_seconds else 0.0


# --------------------------------------------------------------------------------------------
# Prediction core


def _forward(model: nn.Module, batch_u8: np.ndarray, device: torch.device,
             tta: bool = False) -> np.ndarray:
    """``(B, 3, H, W)`` uint8 -> ``(B, H, W)`` float32 probabilities (AMP fp16 on CUDA).

    On the CPU the model runs as :func:`engine.runtime.module_for_inference` gives it: through
    the runtime :func:`engine.runtime.set_runtime` chose, else Conv+BN folded, channels_last.
    ``tta``: average the four flips (:func:`engine.models.forward_proba`).
    """
    x = torch.from_numpy(batch_u8)
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    x = normalise(x)
    h, w = x.shape[-2:]
    ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    with torch.inference_mode():
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                prob = forward_proba(model, x, tta)
        else:
            net = module_for_inference(model, device)
            if net is not model and getattr(net, "channels_last", True):
                x = x.contiguous(memory_format=torch.channels_last)
            prob = forward_proba(net, x, tta)
    return prob[:, :h, :w].cpu().numpy()


def _prefetch(gen: Iterator, depth: int = 2) -> Iterator:
    """Run generator ``gen`` in a reader thread, ``depth`` items ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    t = threading.Thread(target=work, name="crackwatch-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


#: How the probability map is written as a Cloud-Optimized GeoTIFF (``rasterio.shutil.copy``
#: of the tiled working file; :mod:`engine.banded` stitches row bands with the same options).
COG_OPTIONS = {"driver": "COG", "compress": "DEFLATE", "predictor": 2, "blocksize": 512,
               "overview_resampling": "average", "BIGTIFF": "IF_SAFER"}


#: Windows per forward pass when none is given, per device type. On the CPU 4: the same tile
#: megapixels/s as 8 on the project's 2-core VM (1.30 vs 1.28-1.45 MP/s, `crackwatch bench
#: model --batch-size 4|8`) with about 450 MB less peak memory; on CUDA 8.
DEFAULT_BATCH_SIZE = {"cpu": 4, "cuda": 8}


def default_batch_size(device: str | torch.device) -> int:
    """Batch size used when ``batch_size`` is None: :data:`DEFAULT_BATCH_SIZE` for the device
    type (8 for any other device)."""
    return DEFAULT_BATCH_SIZE.get(torch.device(device).type, 8)


def _check_tiling(tile_size: int, overlap: int, batch_size: int, dtype: str = "uint8") -> None:
    if tile_size < SIZE_MULTIPLE or tile_size % SIZE_MULTIPLE:
        raise ValueError(f"tile_size must be a positive multiple of {SIZE_MULTIPLE}, "
                         f"got {tile_size}.")
    if not 0 <= overlap < tile_size // 2 + 1:
        raise ValueError(f"overlap must be in 0..{tile_size // 2} px, got {overlap}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}.")


def predict_image(
    image: np.ndarray,
    model: nn.Module,
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    valid: np.ndarray | None = None,
    tta: bool = False,
) -> np.ndarray:
    """Crack probability of an in-memory photo.

    Args:
        image: ``(rows, cols, 3)`` uint8 RGB.
        model: a segmentation model in ``eval()`` mode on ``device`` (see
            :func:`engine.registry.load_model`).
        tile_size, overlap, batch_size: tiling as in :func:`predict_raster` (batch size
            None: :func:`default_batch_size`).
        valid: optional ``(rows, cols)`` bool mask of valid pixels (the white or black
            collar at the frame, :func:`engine.collar.collar_mask`, is invalid too).
        tta: test-time augmentation, as in :func:`predict_raster`.

    Returns:
        ``(rows, cols)`` float32 probabilities in [0, 1]; NaN where ``valid`` is False and on
        the collar.
    """
    device = torch.device(device)
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    _check_tiling(tile_size, overlap, batch_size)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (rows, cols, 3) uint8, got {image.shape} {image.dtype}.")
    rows, cols = image.shape[:2]
    weights = blend_weights(tile_size, overlap)
    num = np.zeros((rows, cols), np.float32)
    den = np.zeros((rows, cols), np.float32)
    stride = tile_size - overlap
    wins = [(r, c) for r in window_starts(rows, tile_size, stride)
            for c in window_starts(cols, tile_size, stride)]
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    for i in range(0, len(wins), batch_size):
        part = wins[i:i + batch_size]
        h, w = min(tile_size, rows), min(tile_size, cols)
        batch = np.stack([chw[:, r:r + h, c:c + w] for r, c in part])
        prob = _forward(model, batch, device, tta)
        for (r, c), p in zip(part, prob, strict=True):
            wt = weights[:h, :w]
            num[r:r + h, c:c + w] += p * wt
            den[r:r + h, c:c + w] += wt
    out = num / np.maximum(den, 1e-12)
    valid = np.ones((rows, cols), bool) if valid is None else np.asarray(valid, bool)
    out[~(valid & ~collar_mask(chw, valid))] = np.nan
    return out


def predict_raster(
    path: str | Path,
    model: nn.Module,
    *,
    out_path: str | Path,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    crs: str | None = None,
    target_crs: str | None = None,
    dtype: str = "uint8",
    progress: bool = True,
    tta: bool = False,
    rows: tuple[int, int] | None = None,
) -> PredictionResult:
    """Predict crack probability over a georeferenced raster and write it as a COG.

    Args:
        path: the orthomosaic (GeoTIFF or any raster GDAL reads), any band count and dtype
            (see the module docstring for the band and 16-bit rules).
        model: segmentation model in ``eval()`` mode, already on ``device``; input
            ``(B, 3, H, W)`` ImageNet-normalised RGB, output ``(B, 1, H, W)`` logits.
        out_path: the probability map to write: a tiled (512 px), DEFLATE-compressed
            Cloud-Optimized GeoTIFF with overviews, in the raster's CRS and transform.
        tile_size: window side in pixels (multiple of 32). overlap: pixels shared by
            neighbouring windows (about the model's receptive margin, 64 on the cards).
        batch_size: windows per forward pass; None: :func:`default_batch_size`.
        device: ``cpu``, ``cuda``, ``cuda:N``. On CUDA: fp16 autocast and pinned memory.
        crs: CRS to assume for a raster that has none (e.g. ``EPSG:32633``); refused otherwise.
        target_crs: projected CRS for a raster in a geographic CRS (degrees); default the UTM
            zone of the raster's centre. The reprojection (bilinear) is logged and recorded.
        dtype: ``uint8`` (probability x 255, rounded; nodata = an internal mask band) or
            ``float32`` (probability; nodata = NaN). GDAL 3.10 has no Float16 GeoTIFF.
        progress: show a progress bar.
        tta: test-time augmentation: average the model over the four flips of each window
            (:data:`engine.models.TTA_FLIPS`). Four times the model compute; on validation
            data it raised pooled IoU by about 1.6 points (UAV75) and 0.6 (DeepCrack).
        rows: ``(first, stop)``: predict only output rows ``first .. stop - 1`` (a row band,
            :mod:`engine.banded`) and write them as a plain tiled GeoTIFF of ``stop - first``
            rows (its transform shifted to the band), not a COG. Every window that touches
            the band is run, in the same order as for the whole raster, so the band's pixels
            equal the whole run's exactly.

    Returns:
        :class:`PredictionResult` with the output path, CRS, transform, sizes and timings.

    Raises:
        RasterReadError: not a raster, missing, truncated or zero-size.
        BandLayoutError: no image band, or an unsupported dtype (complex).
        CRSError: the raster has no CRS and ``crs`` was not given.
        ValueError: bad tiling parameters or ``dtype``.
    """
    import rasterio

    batch_size = default_batch_size(device) if batch_size is None else batch_size
    _check_tiling(tile_size, overlap, batch_size, dtype)
    path, out_path, device = Path(path), Path(out_path), torch.device(device)
    notes: list[str] = []
    t0 = time.perf_counter()

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        src = open_raster(path)
        reader = src
        try:
            check_readable(src, path)
            src_crs = source_crs(src, path, crs, notes)
            reader, out_crs, reprojected_from = projected_reader(src, src_crs, target_crs, path,
                                                                 notes)
            if tta:
                notes.append("test-time augmentation: probability averaged over 4 flips")
            return _predict_reader(
                reader, path, model, out_path=out_path, out_crs=out_crs, tile_size=tile_size,
                overlap=overlap, batch_size=batch_size, device=device, dtype=dtype,
                progress=progress, notes=notes, t0=t0, tta=tta, rows=rows,
                reprojected_from=reprojected_from)
        finally:
            if reader is not src:
                reader.close()
            src.close()


@dataclass
class _Grid:
    """The windows one prediction runs: ``row_starts`` x ``col_starts`` of ``th x tw``
    pixels, output rows ``first .. stop - 1``."""

    rows: int
    cols: int
    first: int
    stop: int
    th: int
    tw: int
    row_starts: list[int]
    col_starts: list[int]

    @property
    def n_windows(self) -> int:
        return len(self.row_starts) * len(self.col_starts)


def _grid(reader, tile_size: int, overlap: int, band_rows: tuple[int, int] | None) -> _Grid:
    """The block-aligned windows of ``reader`` that touch output rows ``band_rows`` (all
    rows when None), in the whole raster's order.

    Raises:
        ValueError: ``band_rows`` outside the raster.
    """
    rows, cols = reader.height, reader.width
    first, stop = band_rows if band_rows is not None else (0, rows)
    if not 0 <= first < stop <= rows:
        raise ValueError(f"rows must be (first, stop) with 0 <= first < stop <= {rows}, "
                         f"got {band_rows}.")
    bh, bw = reader.block_shapes[0] if getattr(reader, "block_shapes", None) else (0, 0)
    tiled = bool(reader.profile.get("tiled", False))
    stride_r = aligned_stride(tile_size, overlap, bh if tiled else 0, rows)
    stride_c = aligned_stride(tile_size, overlap, bw if tiled else 0, cols)
    th, tw = min(tile_size, rows), min(tile_size, cols)
    # a band runs the windows that touch its rows, in the whole raster's order
    row_starts = [r for r in window_starts(rows, tile_size, stride_r)
                  if r < stop and r + th > first]
    return _Grid(rows, cols, first, stop, th, tw, row_starts,
                 window_starts(cols, tile_size, stride_c))


def _batches(reader, grid: _Grid, bands, limits, batch_size: int, gdal_lock: threading.Lock,
             skipped: list[int]) -> Iterator[tuple]:
    """``("skip", None, None, None)`` per all-nodata window (counted in ``skipped[0]``) and
    ``("batch", [(row, col), ...], uint8 (B, 3, th, tw), valid (B, th, tw))`` per batch."""
    from rasterio.windows import Window

    buf_w, buf_x, buf_v = [], [], []
    for r in grid.row_starts:
        for c in grid.col_starts:
            win = Window(c, r, grid.tw, grid.th)
            with gdal_lock:
                valid = reader.dataset_mask(window=win) > 0
            if not valid.any():
                skipped[0] += 1
                yield "skip", None, None, None
                continue
            with gdal_lock:
                raw = reader.read(list(bands), window=win)
            x = to_uint8(raw, limits)
            frame = (r == 0, r + grid.th >= reader.height, c == 0, c + grid.tw >= reader.width)
            buf_w.append((r, c))
            buf_x.append(x)
            # the collar is an 8-bit export's artefact; a stretch saturates real ground
            buf_v.append(valid if limits is not None else valid & ~collar_mask(x, valid, frame))
            if len(buf_w) == batch_size:
                yield "batch", buf_w, np.stack(buf_x), np.stack(buf_v)
                buf_w, buf_x, buf_v = [], [], []
    if buf_w:
        yield "batch", buf_w, np.stack(buf_x), np.stack(buf_v)


def _input_bands(reader, notes: list[str]):
    """(RGB band indexes, stretch limits or None) of ``reader``, noted in ``notes``."""
    bands, band_note = select_rgb_bands(reader.colorinterp, reader.count)
    notes.append(band_note)
    limits = stretch_limits(reader, bands)
    if limits is not None:
        notes.append(f"{reader.dtypes[bands[0] - 1]} data stretched per band between its "
                     f"{STRETCH_PERCENTILES[0]:g}th and {STRETCH_PERCENTILES[1]:g}th percentile")
    return bands, limits


def _predict_reader(reader, path: Path, model: nn.Module, *, out_path: Path, out_crs,
                    tile_size: int, overlap: int, batch_size: int, device: torch.device,
                    dtype: str, progress: bool, notes: list[str], t0: float,
                    tta: bool = False, rows: tuple[int, int] | None = None,
                    reprojected_from: str | None = None) -> PredictionResult:
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    grid = _grid(reader, tile_size, overlap, rows)
    bands, limits = _input_bands(reader, notes)
    # GDAL's block cache is shared by every dataset of the process: a read in the reader
    # thread can evict, and so flush, dirty blocks of the output being written in this thread
    # (seen once in a full test run: "TIFFReadDirectory: Failed to read directory" while
    # creating the mask). One lock keeps GDAL calls of the two threads apart; the model's
    # forward pass, the expensive part, still overlaps with reading.
    gdal_lock = threading.Lock()
    skipped = [0]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.stem + ".partial.tif")
    out_transform = window_transform(Window(0, grid.first, grid.cols, grid.stop - grid.first),
                                     reader.transform)
    batches = _batches(reader, grid, bands, limits, batch_size, gdal_lock, skipped)
    try:
        model_seconds, processed = _write_probability(
            tmp_path, grid, batches, model, device=device, tta=tta, dtype=dtype,
            crs=out_crs, transform=out_transform, weights=blend_weights(tile_size, overlap),
            gdal_lock=gdal_lock, progress=progress, label=path.name)
        if rows is None:
            rio_copy(tmp_path, out_path, **COG_OPTIONS)
        else:  # a band: a plain tiled GeoTIFF, stitched into the COG by engine.banded
            tmp_path.replace(out_path)
    finally:
        tmp_path.unlink(missing_ok=True)
        # The batches' tensors stay in the tuned heap for reuse while the raster runs; give
        # that memory back now so vectorising (or the next job) does not start from its peak.
        release_free_memory()

    seconds = time.perf_counter() - t0
    height = grid.stop - grid.first
    return PredictionResult(
        path=out_path, crs=out_crs.to_string(), transform=tuple(out_transform)[:6],
        width=grid.cols, height=height, dtype=dtype, windows_total=grid.n_windows,
        windows_skipped=skipped[0], seconds=round(seconds, 3),
        model_seconds=round(model_seconds, 3),
        megapixels_per_s=round(height * grid.cols / 1e6 / seconds, 3) if seconds else 0.0,
        warnings=notes, processed_megapixels=processed * grid.th * grid.tw / 1e6,
        batch_size=batch_size, reprojected_from=reprojected_from,
    )


def _write_probability(tmp_path: Path, grid: _Grid, batches: Iterator[tuple], model: nn.Module,
                       *, device: torch.device, tta: bool, dtype: str, crs, transform,
                       weights: np.ndarray, gdal_lock: threading.Lock, progress: bool,
                       label: str) -> tuple[float, int]:
    """Run ``batches`` (read ahead in a thread) through the model, blend them row band by
    row band (:class:`engine.tiling.RowBandBlender`) and write the final rows to the tiled
    GeoTIFF ``tmp_path``. Returns (model seconds, windows run)."""
    import rasterio
    from rasterio.windows import Window

    first, stop, th, cols = grid.first, grid.stop, grid.th, grid.cols
    profile = {
        "driver": "GTiff", "width": cols, "height": stop - first, "count": 1, "dtype": dtype,
        "crs": crs, "transform": transform, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "NONE", "BIGTIFF": "IF_SAFER",
    }
    if dtype == "float32":
        profile["nodata"] = float("nan")
    model_seconds, processed = 0.0, 0
    band = RowBandBlender(th, grid.tw, cols, weights[:th, :grid.tw])
    band.top = grid.row_starts[0]  # rows above the band's first window get nothing (first > 0)
    with rasterio.open(tmp_path, "w", **profile) as dst:
        def flush(upto: int) -> None:
            """Write final rows [band.top, upto) and shift the band down."""
            top = band.top
            out = band.take(upto, dtype)
            if out is None:
                return
            a, b = max(top, first), min(upto, stop)  # the final rows inside the band
            if a >= b:
                return
            win = Window(0, a - first, cols, b - a)
            with gdal_lock:
                dst.write(out[0][a - top:b - top], 1, window=win)
                if dtype == "uint8":
                    dst.write_mask(out[1][a - top:b - top], window=win)

        bar = tqdm(total=grid.n_windows, desc=f"infer {label}", unit="tile",
                   disable=not progress, leave=False)
        for kind, wins, x, valid in _prefetch(batches):
            if kind == "skip":
                bar.update(1)
                continue
            t = time.perf_counter()
            prob = _forward(model, x, device, tta)
            model_seconds += time.perf_counter() - t
            processed += len(wins)
            for (r, c), p, v in zip(wins, prob, valid, strict=True):
                while r > band.top:
                    flush(min(r, band.top + th))
                band.add(c, p, v)
            bar.update(len(wins))
        bar.close()
        # Windows that were skipped still move the band; flush all that remains.
        while band.top < stop:
            flush(min(stop, band.top + th))
    return model_seconds, processed


__all__ = [
    "COG_OPTIONS", "DEFAULT_BATCH_SIZE", "GDAL_CACHE_MB", "PredictionResult",
    "default_batch_size", "predict_image", "predict_raster",
]
