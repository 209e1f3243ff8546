"""Tiled inference over orthomosaics (GeoTIFF) and photos.

``predict_raster`` reads a raster in windows aligned to its blocks, batches them through a
segmentation model, blends overlapping windows with a smooth weight window and streams the
crack-probability map to a tiled, compressed Cloud-Optimized GeoTIFF in the raster's CRS and
transform. Windows that are entirely nodata/alpha are skipped. Memory is bounded by one row
of windows (``tile_size x cols`` accumulators) and the batch, never by the raster's rows.

``predict_image`` does the same for an in-memory photo ``(rows, cols, 3)`` uint8.

Band and dtype rules (``select_rgb_bands`` and ``stretch_limits``):

- bands whose colour interpretation is red/green/blue are used as RGB; otherwise the first
  three bands; a single band (or band + alpha) is replicated to grey RGB;
- validity comes from GDAL's dataset mask, which honours an alpha band, a nodata value and an
  internal mask band alike;
- 8-bit data is used as is; any other integer or float type is linearly stretched per band
  between its 2nd and 98th percentile over valid pixels of a decimated read (<= 1024 pixels on
  the long side), the default "cumulative count cut" of QGIS, then clipped to 0..255.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.allocator import release_free_memory
from engine.data import normalise
from engine.errors import BandLayoutError, CRSError, RasterReadError
from engine.models import SIZE_MULTIPLE, forward_proba, inference_module
from geodata.crs import utm_crs_for

log = logging.getLogger(__name__)

#: GDAL block cache while reading/writing (MB): keeps memory flat for any raster size.
GDAL_CACHE_MB = 64
STRETCH_PERCENTILES = (2.0, 98.0)
SUPPORTED_DTYPES = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"}


class StripedRasterWarning(UserWarning):
    """The input GeoTIFF is striped, not tiled: windowed reads are slow on large files."""


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
# Windows and blending


def window_starts(n: int, tile: int, stride: int) -> list[int]:
    """Start offsets of windows of length ``tile`` covering ``0..n`` with step ``stride``.

    The last window is aligned to the end, so every window lies inside ``0..n`` when
    ``n >= tile``; a single window at 0 when ``n <= tile``.
    """
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def aligned_stride(tile: int, overlap: int, block: int, n: int) -> int:
    """Window step: ``tile - overlap``, rounded down to a multiple of the block size when the
    raster is tiled in blocks smaller than the tile (so reads start on block edges)."""
    stride = tile - overlap
    if 1 < block < tile and block < n and stride >= block:
        stride = (stride // block) * block
    return max(1, stride)


def blend_weights(tile: int, overlap: int, eps: float = 1e-3) -> np.ndarray:
    """Smooth ``(tile, tile)`` float32 weight window for overlap blending.

    Separable: each axis ramps up over ``overlap`` pixels at both ends with a squared sine
    (``sin^2``, the Hann taper) from ``eps`` to 1 and is 1 in the middle. Outputs are blended as
    ``sum(w * p) / sum(w)``, so any positive weight gives an exact partition of unity: a
    constant prediction stays constant, and seams vanish because the weights fall smoothly to
    near zero at each window's edge.
    """
    i = np.arange(tile, dtype=np.float64)
    if overlap > 0:
        ramp = np.clip((np.minimum(i, tile - 1 - i) + 0.5) / overlap, 0.0, 1.0)
        w1 = np.maximum(np.sin(0.5 * np.pi * ramp) ** 2, eps)
    else:
        w1 = np.ones(tile)
    return np.outer(w1, w1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Reading


def select_rgb_bands(colorinterp: tuple, count: int) -> tuple[tuple[int, int, int], str]:
    """1-based band indexes to read as (R, G, B) and a note saying which rule applied.

    Raises:
        BandLayoutError: the raster has no bands.
    """
    from rasterio.enums import ColorInterp

    if count < 1:
        raise BandLayoutError("The raster has no bands; export the orthomosaic as RGB(A).")
    ci = list(colorinterp)
    rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    if all(c in ci for c in rgb):
        return tuple(ci.index(c) + 1 for c in rgb), "RGB bands by colour interpretation"
    colour = [k + 1 for k, c in enumerate(ci) if c != ColorInterp.alpha]
    if len(colour) >= 3:
        return (colour[0], colour[1], colour[2]), (
            f"no RGB colour interpretation: bands {colour[:3]} used as R, G, B"
        )
    if len(colour) >= 1:
        return (colour[0],) * 3, f"single band {colour[0]} replicated to grey RGB"
    raise BandLayoutError(
        f"All {count} bands are alpha; there is no image band. Export the orthomosaic as RGB(A)."
    )


def stretch_limits(src, bands: tuple[int, int, int]) -> np.ndarray | None:
    """Per-band (low, high) of the 2-98 % stretch for non-8-bit rasters, shape (3, 2); None
    for uint8. Computed from a decimated read (<= 1024 px long side) over valid pixels."""
    if src.dtypes[bands[0] - 1] == "uint8":
        return None
    scale = max(1.0, max(src.height, src.width) / 1024)
    shape = (max(1, int(src.height / scale)), max(1, int(src.width / scale)))
    data = src.read(list(bands), out_shape=(3, *shape)).astype(np.float64)
    valid = src.dataset_mask(out_shape=shape) > 0
    limits = np.zeros((3, 2))
    for b in range(3):
        v = data[b][valid & np.isfinite(data[b])]
        if v.size == 0:
            limits[b] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(v, STRETCH_PERCENTILES)
        limits[b] = (lo, hi if hi > lo else lo + 1.0)
    return limits


def to_uint8(data: np.ndarray, limits: np.ndarray | None) -> np.ndarray:
    """``(3, rows, cols)`` raster values -> uint8 using the stretch ``limits`` (None: as is)."""
    if limits is None:
        return data.astype(np.uint8, copy=False)
    x = data.astype(np.float32)
    lo = limits[:, 0, None, None].astype(np.float32)
    hi = limits[:, 1, None, None].astype(np.float32)
    x = (x - lo) * (255.0 / (hi - lo))
    return np.nan_to_num(np.clip(x, 0, 255), nan=0).astype(np.uint8)


def open_raster(path: str | Path):
    """Open ``path`` with rasterio, turning GDAL's errors into clear ones.

    Raises:
        RasterReadError: missing file, not a raster, truncated, or zero-size.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise RasterReadError(f"Raster {path} does not exist; check the path.")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"{path} is not a readable raster ({exc}). Give a GeoTIFF orthomosaic (or any format "
            f"GDAL reads); if it was copied, check it is complete."
        ) from exc
    if src.width == 0 or src.height == 0 or src.count == 0:
        src.close()
        raise RasterReadError(f"{path} has zero size ({src.width}x{src.height}, "
                              f"{src.count} bands); re-export the orthomosaic.")
    return src


def _check_readable(src, path: Path) -> None:
    """Read the last block so that a truncated file fails now, not halfway through."""
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    try:
        src.read(1, window=Window(max(0, src.width - 1), max(0, src.height - 1), 1, 1))
    except (RasterioIOError, OSError) as exc:
        raise RasterReadError(
            f"{path} is truncated or corrupt: reading its last pixels failed ({exc}). Copy the "
            f"file again or re-export it."
        ) from exc


# --------------------------------------------------------------------------------------------
# Prediction core


def _forward(model: nn.Module, batch_u8: np.ndarray, device: torch.device,
             tta: bool = False) -> np.ndarray:
    """``(B, 3, H, W)`` uint8 -> ``(B, H, W)`` float32 probabilities (AMP fp16 on CUDA).

    On the CPU the model runs as :func:`engine.models.inference_module` (Conv+BN folded,
    channels_last input). ``tta``: average the four flips (:func:`engine.models.forward_proba`).
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
            net = inference_module(model, device)
            if net is not model:
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


def _check_tiling(tile_size: int, overlap: int, batch_size: int) -> None:
    if tile_size < SIZE_MULTIPLE or tile_size % SIZE_MULTIPLE:
        raise ValueError(f"tile_size must be a positive multiple of {SIZE_MULTIPLE}, "
                         f"got {tile_size}.")
    if not 0 <= overlap < tile_size // 2 + 1:
        raise ValueError(f"overlap must be in 0..{tile_size // 2} px, got {overlap}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")


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
        valid: optional ``(rows, cols)`` bool mask of valid pixels.
        tta: test-time augmentation, as in :func:`predict_raster`.

    Returns:
        ``(rows, cols)`` float32 probabilities in [0, 1]; NaN where ``valid`` is False.
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
    if valid is not None:
        out[~valid] = np.nan
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
        tile_size: window side in pixels (multiple of 32).
        overlap: pixels shared by neighbouring windows (about the model's receptive margin;
            the model card's ``receptive_overlap_px`` is 64).
        batch_size: windows per forward pass; None: :func:`default_batch_size` (4 on the
            CPU, 8 on CUDA).
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
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.errors import CRSError as RioCRSError
    from rasterio.vrt import WarpedVRT

    batch_size = default_batch_size(device) if batch_size is None else batch_size
    _check_tiling(tile_size, overlap, batch_size)
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"dtype must be 'uint8' or 'float32', got {dtype!r}.")
    path, out_path = Path(path), Path(out_path)
    device = torch.device(device)
    notes: list[str] = []
    t0 = time.perf_counter()

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        src = open_raster(path)
        vrt = None
        try:
            _check_readable(src, path)
            bad = [d for d in src.dtypes if d not in SUPPORTED_DTYPES]
            if bad:
                raise BandLayoutError(
                    f"{path} has band type(s) {sorted(set(bad))}; supported: "
                    f"{sorted(SUPPORTED_DTYPES)}. Convert it with gdal_translate -ot Byte/UInt16.")
            src_crs = src.crs
            if src_crs is None:
                if crs is None:
                    raise CRSError(
                        f"{path} has no CRS, so its cracks cannot be placed or measured. If you "
                        f"know it, pass it (--crs EPSG:XXXX); otherwise georeference the "
                        f"orthomosaic in the photogrammetry software and export it again."
                    )
                try:
                    src_crs = CRS.from_user_input(crs)
                except RioCRSError as exc:
                    raise CRSError(f"Cannot parse CRS {crs!r}: {exc}. Use e.g. EPSG:32633.") \
                        from exc
                if src.transform.is_identity:
                    raise CRSError(f"{path} has no geotransform, so a CRS alone cannot place "
                                   f"it; georeference the raster first.")
                notes.append(f"raster has no CRS; user-given CRS {src_crs.to_string()} assumed")
            bh0, bw0 = src.block_shapes[0]
            if not src.profile.get("tiled", False) and bw0 == src.width and bh0 < src.height:
                msg = (f"{path.name} is a striped (untiled) GeoTIFF; windowed reads re-read whole "
                       f"strips and are slow on large files. Convert it once with "
                       f"`gdal_translate -of COG {path.name} {path.stem}_cog.tif`.")
                warnings.warn(msg, StripedRasterWarning, stacklevel=2)
                notes.append(msg)
            reader = src
            reprojected_from = None
            if src_crs.is_geographic:
                if target_crs:
                    dst_crs = CRS.from_user_input(target_crs)
                else:
                    from rasterio.warp import transform_bounds
                    w, s, e, n = transform_bounds(src_crs, "EPSG:4326", *src.bounds)
                    dst_crs = CRS.from_epsg(utm_crs_for((w + e) / 2, (s + n) / 2).to_epsg())
                if dst_crs.is_geographic:
                    raise CRSError(f"target CRS {dst_crs} is geographic; give a projected CRS "
                                   f"in metres.")
                has_mask = src.nodata is not None or any(
                    c.name == "alpha" for c in src.colorinterp)
                vrt = WarpedVRT(src, src_crs=src_crs, crs=dst_crs, resampling=Resampling.bilinear,
                                add_alpha=not has_mask)
                reader = vrt
                reprojected_from = src_crs.to_string()
                msg = (f"{path.name} is in geographic CRS {reprojected_from} (degrees); "
                       f"reprojected to {dst_crs.to_string()} (bilinear) to measure in metres")
                log.warning(msg)
                notes.append(msg)
                out_crs = dst_crs
            else:
                out_crs = src_crs
            if tta:
                notes.append("test-time augmentation: probability averaged over 4 flips")
            result = _predict_reader(
                reader, path, model, out_path=out_path, out_crs=out_crs, tile_size=tile_size,
                overlap=overlap, batch_size=batch_size, device=device, dtype=dtype,
                progress=progress, notes=notes, t0=t0, tta=tta, rows=rows,
            )
            result.reprojected_from = reprojected_from
            return result
        finally:
            if vrt is not None:
                vrt.close()
            src.close()


class RowBandBlender:
    """Weighted blending of one row of windows, in buffers allocated once and reused.

    Holds ``num = sum(w * p)`` and ``den = sum(w)`` for raster rows ``[top, top + rows)``
    (``rows`` = the window height), all ``cols`` columns, float32. :meth:`add` blends one
    window's probabilities; :meth:`take` turns the first rows into final output and moves the
    band down. Every array (the two accumulators, the per-window weight scratch, the validity
    and uint8 output rows) is allocated in ``__init__``; nothing is allocated per window or
    per flush, and the band is shifted in place, so a whole raster is blended in the same
    ``~ (2 * 4 + 3) * rows * cols`` bytes (issue 14: no allocator churn, memory flat in the
    raster's height). The arithmetic is the same, in the same order, as
    ``num += p * (w * valid); den += w * valid; out = num / max(den, 1e-12)``.

    Args:
        rows: window height (px); tile_cols: window width (px); cols: raster width (px).
        weights: ``(rows, tile_cols)`` float32 blending window (:func:`blend_weights`).
    """

    def __init__(self, rows: int, tile_cols: int, cols: int, weights: np.ndarray):
        if weights.shape != (rows, tile_cols):
            raise ValueError(f"weights must be ({rows}, {tile_cols}), got {weights.shape}.")
        self.rows, self.tile_cols, self.cols = rows, tile_cols, cols
        self.weights = weights.astype(np.float32, copy=False)
        self.top = 0
        self._num = np.zeros((rows, cols), np.float32)
        self._den = np.zeros((rows, cols), np.float32)
        self._wt = np.empty((rows, tile_cols), np.float32)
        self._valid = np.empty((rows, cols), bool)
        self._u8 = np.empty((rows, cols), np.uint8)
        self._mask_u8 = np.empty((rows, cols), np.uint8)
        self._pending = 0  # rows taken but not yet shifted out (their views are still in use)

    def buffers(self) -> tuple[np.ndarray, ...]:
        """Every array the blender owns (for tests: they are the same objects for its life)."""
        return (self._num, self._den, self._wt, self._valid, self._u8, self._mask_u8)

    def _shift(self) -> None:
        """Move rows ``[n, rows)`` to the top and zero the rest (``n`` = rows last taken), in
        place: copies of at most ``n`` rows, which never overlap, so numpy makes no temporary."""
        n, self._pending = self._pending, 0
        if n == 0:
            return
        keep = self.rows - n
        for a in (self._num, self._den):
            for i in range(0, keep, n):
                m = min(n, keep - i)
                a[i:i + m] = a[i + n:i + n + m]
            a[keep:] = 0

    def add(self, col: int, prob: np.ndarray, valid: np.ndarray) -> None:
        """Blend a window at columns ``[col, col + tile_cols)`` of the band's rows.

        ``prob``: ``(rows, tile_cols)`` float32 probabilities; ``valid``: same-shape bool mask
        (False pixels get weight 0).
        """
        self._shift()
        wt = self._wt
        np.multiply(self.weights, valid, out=wt)
        self._den[:, col:col + self.tile_cols] += wt
        np.multiply(prob, wt, out=wt)
        self._num[:, col:col + self.tile_cols] += wt

    def take(self, upto: int, dtype: str = "uint8"):
        """Final values of rows ``[top, upto)``; the band then starts at ``upto``.

        Returns ``(values, mask)`` for ``dtype="uint8"`` (probability x 255 rounded, and the
        GDAL mask 0/255), ``(values, None)`` for ``"float32"`` (NaN where no window covered a
        pixel), or None when ``upto <= top``. The arrays are views into the blender's
        buffers: valid until the next :meth:`add` or :meth:`take`.

        Raises:
            ValueError: more rows than the band holds.
        """
        self._shift()
        n = upto - self.top
        if n <= 0:
            return None
        if n > self.rows:
            raise ValueError(f"Cannot take {n} rows from a band of {self.rows}.")
        num, den, valid = self._num[:n], self._den[:n], self._valid[:n]
        np.greater(den, 0, out=valid)
        # These rows are final: compute the probability in place in ``num``.
        np.maximum(den, 1e-12, out=den)
        np.divide(num, den, out=num)
        if dtype == "uint8":
            np.clip(num, 0, 1, out=num)
            np.multiply(num, 255, out=num)
            np.rint(num, out=num)
            values = self._u8[:n]
            values[...] = num
            mask = self._mask_u8[:n]
            np.multiply(valid, 255, out=mask, casting="unsafe")
            out = (values, mask)
        else:
            np.logical_not(valid, out=valid)
            np.copyto(num, np.float32(np.nan), where=valid)
            out = (num, None)
        self._pending = n
        self.top = upto
        return out


def _predict_reader(reader, path: Path, model: nn.Module, *, out_path: Path, out_crs,
                    tile_size: int, overlap: int, batch_size: int, device: torch.device,
                    dtype: str, progress: bool, notes: list[str], t0: float,
                    tta: bool = False, rows: tuple[int, int] | None = None) -> PredictionResult:
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    band_rows = rows
    rows, cols = reader.height, reader.width
    first, stop = band_rows if band_rows is not None else (0, rows)
    if not 0 <= first < stop <= rows:
        raise ValueError(f"rows must be (first, stop) with 0 <= first < stop <= {rows}, "
                         f"got {band_rows}.")
    bands, band_note = select_rgb_bands(reader.colorinterp, reader.count)
    notes.append(band_note)
    limits = stretch_limits(reader, bands)
    if limits is not None:
        notes.append(f"{reader.dtypes[bands[0] - 1]} data stretched per band between its "
                     f"{STRETCH_PERCENTILES[0]:g}th and {STRETCH_PERCENTILES[1]:g}th percentile")
    bh, bw = reader.block_shapes[0] if getattr(reader, "block_shapes", None) else (0, 0)
    tiled = bool(reader.profile.get("tiled", False))
    stride_r = aligned_stride(tile_size, overlap, bh if tiled else 0, rows)
    stride_c = aligned_stride(tile_size, overlap, bw if tiled else 0, cols)
    row_starts = window_starts(rows, tile_size, stride_r)
    col_starts = window_starts(cols, tile_size, stride_c)
    th, tw = min(tile_size, rows), min(tile_size, cols)
    # a band runs the windows that touch its rows, in the whole raster's order
    row_starts = [r for r in row_starts if r < stop and r + th > first]
    weights = blend_weights(tile_size, overlap)[:th, :tw]
    n_windows = len(row_starts) * len(col_starts)
    skipped = 0

    # GDAL's block cache is shared by every dataset of the process: a read in the reader
    # thread can evict, and so flush, dirty blocks of the output being written in this thread
    # (seen once in a full test run: "TIFFReadDirectory: Failed to read directory" while
    # creating the mask). One lock keeps GDAL calls of the two threads apart; the model's
    # forward pass, the expensive part, still overlaps with reading.
    gdal_lock = threading.Lock()

    def batches():
        nonlocal skipped
        buf_w, buf_x, buf_v = [], [], []
        for r in row_starts:
            for c in col_starts:
                win = Window(c, r, tw, th)
                with gdal_lock:
                    valid = reader.dataset_mask(window=win) > 0
                if not valid.any():
                    skipped += 1
                    yield "skip", None, None, None
                    continue
                with gdal_lock:
                    raw = reader.read(list(bands), window=win)
                data = to_uint8(raw, limits)
                buf_w.append((r, c))
                buf_x.append(data)
                buf_v.append(valid)
                if len(buf_w) == batch_size:
                    yield "batch", buf_w, np.stack(buf_x), np.stack(buf_v)
                    buf_w, buf_x, buf_v = [], [], []
        if buf_w:
            yield "batch", buf_w, np.stack(buf_x), np.stack(buf_v)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.stem + ".partial.tif")
    out_transform = window_transform(Window(0, first, cols, stop - first), reader.transform)
    profile = {
        "driver": "GTiff", "width": cols, "height": stop - first, "count": 1, "dtype": dtype,
        "crs": out_crs, "transform": out_transform, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "NONE", "BIGTIFF": "IF_SAFER",
    }
    if dtype == "float32":
        profile["nodata"] = float("nan")
    model_seconds = 0.0
    processed = 0
    band = RowBandBlender(th, tw, cols, weights)
    band.top = row_starts[0]  # rows above the band's first window get nothing (first > 0)

    try:
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

            bar = tqdm(total=n_windows, desc=f"infer {path.name}", unit="tile",
                       disable=not progress, leave=False)
            for kind, wins, x, valid in _prefetch(batches()):
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
        if band_rows is None:
            rio_copy(tmp_path, out_path, **COG_OPTIONS)
        else:  # a band: a plain tiled GeoTIFF, stitched into the COG by engine.banded
            tmp_path.replace(out_path)
    finally:
        tmp_path.unlink(missing_ok=True)
        # The batches' tensors stay in the tuned heap for reuse while the raster runs; give
        # that memory back now so vectorising (or the next job) does not start from its peak.
        release_free_memory()

    seconds = time.perf_counter() - t0
    return PredictionResult(
        path=out_path, crs=out_crs.to_string(), transform=tuple(out_transform)[:6],
        width=cols, height=stop - first, dtype=dtype, windows_total=n_windows,
        windows_skipped=skipped, seconds=round(seconds, 3), model_seconds=round(model_seconds, 3),
        megapixels_per_s=round((stop - first) * cols / 1e6 / seconds, 3) if seconds else 0.0,
        warnings=notes, processed_megapixels=processed * th * tw / 1e6, batch_size=batch_size,
    )


__all__ = [
    "COG_OPTIONS", "DEFAULT_BATCH_SIZE", "PredictionResult", "RowBandBlender",
    "StripedRasterWarning", "aligned_stride", "blend_weights", "default_batch_size",
    "open_raster", "predict_image", "predict_raster", "select_rgb_bands", "stretch_limits",
    "to_uint8", "window_starts",
]
