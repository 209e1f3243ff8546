"""Crack segmentation datasets: catalogue, image/mask pairing, loading and augmentation.

Layout expected under a data root (default ``../shared/data`` beside the project checkout)::

    segmentation/deepcrack/{train,test}/{images,masks}/
    segmentation/uav75/{train,val,test}/{images,masks,planking}/
    segmentation/masonry/{images,masks}/

An image and its mask are paired by file stem (``11111.jpg`` <-> ``11111.png``). Masks are
single-band, 0 = background and 255 = crack; any value > 127 counts as crack. UAV75's
``planking/`` masks mark formwork joints: a hard negative that looks like a crack, used to
up-weight the loss there and to report a false-positive rate.

Arrays: images are ``(rows, cols, 3)`` uint8 RGB; masks ``(rows, cols)`` bool. Tensors handed to
a model are ``(3, H, W)`` float32 normalised with :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from engine import negatives
from engine.errors import DataNotFoundError, ImageReadError, MaskShapeError, PairingError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_data_root() -> Path:
    """``../shared/data`` relative to the project checkout (the folder holding ``engine/``)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    """One named split of a crack segmentation dataset.

    Attributes:
        name: catalogue name, e.g. ``"deepcrack-test"``.
        folder: path relative to the data root holding ``images/`` and ``masks/``.
        domain: image domain (``concrete-pavement``, ``drone-concrete``, ``masonry``).
        license: the dataset's license, as stated in ``../shared/data/README.md``.
        citation: the dataset's paper.
        has_planking: whether a ``planking/`` mask folder (hard negatives) exists.
        tile_suffix: regular expression of the suffix that numbers the tiles cut from one
            source photo (DeepCrack ``11289-3``, masonry ``a_31_7``); the stem without it names
            the photo. ``None``: every image is its own photo.
        has_val_split: the dataset has its own validation split (training does not hold
            images of it out).
        negatives: not a folder of images and masks but reviewed crack-free cells of real
            photos (:mod:`engine.negatives`); ``folder`` names the split.
    """

    name: str
    folder: str
    domain: str
    license: str
    citation: str
    has_planking: bool = False
    tile_suffix: str | None = None
    has_val_split: bool = False
    negatives: bool = False

    def source_photo(self, stem: str) -> str:
        """The source photo an image (by file stem) was cut from, e.g. ``"11289"`` for
        ``"11289-3"`` (the stem itself where the dataset has no tile suffix)."""
        return re.sub(self.tile_suffix, "", stem) if self.tile_suffix else stem


DEEPCRACK_CITE = "Liu et al., DeepCrack, Neurocomputing 338 (2019)"
UAV75_CITE = ("Benz et al., Crack segmentation on UAS-based imagery using transfer learning, "
              "IVCNZ 2019")
MASONRY_CITE = ("Dais et al., Automatic crack classification and segmentation on masonry "
                "surfaces, Automation in Construction 125 (2021)")
DEEPCRACK_LICENSE = "non-commercial research and education"
ROCKFRACTURE_CITE = ("Liyihui1/identification-of-rock-fracture (GitHub): rock-face fracture "
                     "photos with fracture masks")
NEGATIVES_CITE = "brighton_beach drone photos (OpenDroneMap), reviewed crack-free cells"

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec("deepcrack-train", "segmentation/deepcrack/train", "concrete-pavement",
                    DEEPCRACK_LICENSE, DEEPCRACK_CITE, tile_suffix=r"-\d+$"),
        DatasetSpec("deepcrack-test", "segmentation/deepcrack/test", "concrete-pavement",
                    DEEPCRACK_LICENSE, DEEPCRACK_CITE, tile_suffix=r"-\d+$"),
        DatasetSpec("uav75-train", "segmentation/uav75/train", "drone-concrete", "GPL-3.0",
                    UAV75_CITE, has_planking=True, has_val_split=True),
        DatasetSpec("uav75-val", "segmentation/uav75/val", "drone-concrete", "GPL-3.0",
                    UAV75_CITE, has_planking=True),
        DatasetSpec("uav75-test", "segmentation/uav75/test", "drone-concrete", "GPL-3.0",
                    UAV75_CITE, has_planking=True),
        DatasetSpec("masonry", "segmentation/masonry", "masonry", "GPL-3.0", MASONRY_CITE,
                    tile_suffix=r"_\d+$"),
        DatasetSpec("rockfracture-train", "segmentation/rockfracture/train", "rock-face",
                    "AGPL-3.0", ROCKFRACTURE_CITE, has_val_split=True),
        DatasetSpec("rockfracture-val", "segmentation/rockfracture/val", "rock-face",
                    "AGPL-3.0", ROCKFRACTURE_CITE),
        DatasetSpec("rockfracture-test", "segmentation/rockfracture/test", "rock-face",
                    "AGPL-3.0", ROCKFRACTURE_CITE),
        *(DatasetSpec(f"terrain-negatives-{split}", split, "natural-terrain-negative",
                      "BSD-2-Clause", NEGATIVES_CITE, has_val_split=True, negatives=True)
          for split in ("train", "val", "test")),
    )
}


@dataclass(frozen=True)
class SamplePaths:
    """Files of one sample: the image, its crack mask, and optionally its planking mask."""

    stem: str
    image: Path
    mask: Path
    planking: Path | None = None


@dataclass
class Sample:
    """A decoded sample. ``image`` (rows, cols, 3) uint8 RGB; masks (rows, cols) bool."""

    stem: str
    image: np.ndarray
    mask: np.ndarray
    planking: np.ndarray | None = None
    domain: str = ""
    meta: dict = field(default_factory=dict)


def _list_images(folder: Path) -> dict[str, Path]:
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in files:
                raise PairingError(
                    f"Two files with stem {p.stem!r} in {folder}: {files[p.stem].name} and "
                    f"{p.name}. Keep one per stem so images and masks pair unambiguously."
                )
            files[p.stem] = p
    return files


def pair_images_masks(
    images_dir: Path, masks_dir: Path, planking_dir: Path | None = None
) -> list[SamplePaths]:
    """Pair every image in ``images_dir`` with the mask of the same stem in ``masks_dir``.

    Returns samples sorted by stem.

    Raises:
        DataNotFoundError: a folder does not exist, or ``images_dir`` holds no image.
        PairingError: an image has no mask, or a mask has no image (every offending file named).
    """
    for d in (images_dir, masks_dir):
        if not Path(d).is_dir():
            raise DataNotFoundError(
                f"Data folder {d} does not exist. Expected <data-root>/segmentation/... as laid "
                f"out in ../shared/data/README.md; pass --data-root (or data_root=) pointing at "
                f"the folder that holds segmentation/."
            )
    images = _list_images(Path(images_dir))
    masks = _list_images(Path(masks_dir))
    if not images:
        raise DataNotFoundError(
            f"No images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}; check the path."
        )
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(
                f"images without a mask in {masks_dir}: "
                + ", ".join(images[s].name for s in no_mask[:10])
                + (" ..." if len(no_mask) > 10 else "")
            )
        if no_image:
            parts.append(
                f"masks without an image in {images_dir}: "
                + ", ".join(masks[s].name for s in no_image[:10])
                + (" ..." if len(no_image) > 10 else "")
            )
        raise PairingError(
            "Unpaired files (images and masks pair by file stem): " + "; ".join(parts)
            + ". Add the missing mask/image or move the unpaired file out of the folder."
        )
    planking = {}
    if planking_dir and Path(planking_dir).is_dir():
        planking = _list_images(Path(planking_dir))
    return [
        SamplePaths(stem=s, image=images[s], mask=masks[s], planking=planking.get(s))
        for s in sorted(images)
    ]


def dataset_samples(name_or_path: str | Path, data_root: Path | None = None) -> tuple[
    list[SamplePaths], DatasetSpec
]:
    """Resolve a catalogue name (see :data:`DATASETS`) or a folder with ``images/`` + ``masks/``.

    Raises:
        DataNotFoundError: unknown name and no such folder.
    """
    root = Path(data_root) if data_root else default_data_root()
    if str(name_or_path) in DATASETS:
        spec = DATASETS[str(name_or_path)]
        if spec.negatives:
            raise ValueError(f"{spec.name} is cut from whole photos, not a folder of image/mask "
                             f"files: load it with engine.data.load_dataset.")
        folder = root / spec.folder
    else:
        folder = Path(name_or_path)
        if not folder.is_dir():
            raise DataNotFoundError(
                f"{name_or_path!r} is neither a dataset name ({', '.join(DATASETS)}) nor a "
                f"folder. Give a known name or a folder holding images/ and masks/."
            )
        spec = DatasetSpec(folder.name, str(folder), "custom", "unknown (user data)", "user data",
                           has_planking=(folder / "planking").is_dir())
    samples = pair_images_masks(
        folder / "images", folder / "masks", folder / "planking" if spec.has_planking else None
    )
    return samples, spec


def load_dataset(name_or_path: str | Path, data_root: Path | None = None,
                 limit: int | None = None) -> tuple[list[Sample], DatasetSpec]:
    """Decode a whole dataset (catalogue name or folder, see :func:`dataset_samples`), the
    terrain negatives (:mod:`engine.negatives`) included. ``limit``: the first N samples.

    Raises:
        DataNotFoundError, PairingError, ImageReadError, MaskShapeError: bad dataset input.
    """
    spec = DATASETS.get(str(name_or_path))
    if spec is not None and spec.negatives:
        return negative_samples(spec.folder, data_root, limit), spec
    paths, spec = dataset_samples(name_or_path, data_root)
    if limit:
        paths = paths[:limit]
    return [load_sample(p, spec.domain) for p in paths], spec


def negative_samples(split: str, data_root: Path | None = None,
                     limit: int | None = None) -> list[Sample]:
    """The reviewed crack-free cells (:mod:`engine.negatives`) of one split as
    all-background samples.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (:data:`engine.negatives.NEGATIVE_SPLITS`).
        data_root: folder holding ``geo/brighton_beach`` (default ``../shared/data``).
        limit: keep only the first N cells (smoke runs).

    Returns:
        Samples named ``DJI_0018_c0r0`` ..., ``image`` (562, 500, 3) uint8, ``mask`` all False,
        ``meta`` ``{"photo", "column", "row", "terrain"}``.

    Raises:
        ValueError: an unknown split.
        DataNotFoundError: a photo of the split is missing.
        ImageReadError: a photo cannot be decoded.
    """
    if split not in negatives.NEGATIVE_SPLITS:
        raise ValueError(f"Unknown negatives split {split!r}; choose from "
                         f"{', '.join(negatives.NEGATIVE_SPLITS)}.")
    root = (Path(data_root) if data_root else default_data_root()) / negatives.FOLDER
    cols, rows = negatives.PHOTO_SIZE
    cell_rows, cell_cols = negatives.CELL_ROWS, negatives.CELL_COLS
    out: list[Sample] = []
    for photo in negatives.NEGATIVE_SPLITS[split]:
        path = root / f"{photo}.JPG"
        if not path.is_file():
            raise DataNotFoundError(
                f"Negative-terrain photo {path} is missing. It comes from "
                f"../shared/data/geo/brighton_beach (see ../shared/data/README.md); pass "
                f"--data-root pointing at the folder that holds geo/ and segmentation/.")
        rgb = read_rgb(path)
        if (rgb.shape[1], rgb.shape[0]) != (cols, rows):
            raise DataNotFoundError(
                f"{path} is {rgb.shape[1]}x{rgb.shape[0]} px, not the {cols}x{rows} photo the "
                f"reviewed cells were drawn on; restore the original.")
        for c, r, kind in negatives.NEGATIVE_CELLS[photo]:
            crop = np.ascontiguousarray(
                rgb[r * cell_rows:(r + 1) * cell_rows, c * cell_cols:(c + 1) * cell_cols])
            out.append(Sample(f"{photo}_c{c}r{r}", crop, np.zeros(crop.shape[:2], bool),
                              domain=negatives.DOMAIN,
                              meta={"photo": photo, "column": c, "row": r, "terrain": kind}))
            if limit and len(out) >= limit:
                return out
    return out


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to ``(rows, cols, 3)`` uint8 RGB.

    Raises:
        ImageReadError: the file is missing, truncated or not an image.
    """
    return _decode(path, "RGB", "image", "re-export it or remove it (and its mask) from the "
                                         "dataset")


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask to ``(rows, cols)`` bool (value > 127 is True).

    Raises:
        ImageReadError: the file is missing, truncated or not an image.
    """
    return _decode(path, "L", "mask", "re-export it as a single-band PNG with 0 = background "
                                      "and 255 = crack") > 127


def _decode(path: Path, mode: str, what: str, advice: str) -> np.ndarray:
    """``path`` decoded and converted to PIL ``mode`` as an array; :class:`ImageReadError`
    naming ``what`` it is and ending in ``advice`` when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"Cannot read {what} {path}: {exc}. The file is corrupt or not an image; {advice}."
        ) from exc


def load_sample(paths: SamplePaths, domain: str = "") -> Sample:
    """Decode one sample and check that its masks match the image size.

    Raises:
        ImageReadError: a file cannot be decoded.
        MaskShapeError: a mask's (rows, cols) differs from the image's.
    """
    image = read_rgb(paths.image)
    mask = read_mask(paths.mask)
    planking = read_mask(paths.planking) if paths.planking else None
    for kind, m, p in (("mask", mask, paths.mask), ("planking mask", planking, paths.planking)):
        if m is not None and m.shape != image.shape[:2]:
            raise MaskShapeError(
                f"{kind} {p} is {m.shape[1]}x{m.shape[0]} (cols x rows) but image "
                f"{paths.image} is {image.shape[1]}x{image.shape[0]}. Re-export the mask at the "
                f"image's size."
            )
    return Sample(paths.stem, image, mask, planking, domain=domain)


def normalise(image: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float ``(..., 3, H, W)`` -> ImageNet-normalised float32."""
    x = image.float()
    if image.dtype == torch.uint8:
        x = x / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def build_augmentation(crop_size: int, style: bool = False) -> v2.Compose:
    """Training augmentation (torchvision.transforms.v2) applied jointly to image and masks.

    Random crop (padded where the image is smaller; padding gets loss weight 0), D4 flips and
    90-degree rotations, a small free rotation, colour jitter, occasional blur and grayscale.
    Colour ops touch only the image; geometric ops use nearest interpolation on masks.

    ``style=True`` adds what breaks one photo set's style (issue 26: the slope model learned
    the rockfracture photos, not rock fractures): stronger colour and hue jitter, blur more
    often and stronger (sigma up to 2 px), and JPEG re-compression at quality 25-90 on half
    the crops (``v2.JPEG``, on the uint8 crop).
    """
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: 0}
    geometry = [
        v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomChoice([v2.RandomRotation((a, a)) for a in (0, 90)]),
        v2.RandomApply([v2.RandomRotation(12, fill=fill)], p=0.3),
    ]
    if style:
        return v2.Compose([
            *geometry,
            v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.6, hue=0.08),
            v2.RandomGrayscale(p=0.15),
            v2.RandomApply([v2.GaussianBlur(7, sigma=(0.1, 2.0))], p=0.4),
            v2.RandomApply([v2.JPEG((25, 90))], p=0.5),
        ])
    return v2.Compose([
        *geometry,
        v2.ColorJitter(brightness=0.35, contrast=0.35, saturation=0.3),
        # hue shifts cost ~4 ms of a ~10 ms crop on a CPU core (RGB<->HSV): on some crops only
        v2.RandomApply([v2.ColorJitter(hue=0.03)], p=0.3),
        v2.RandomGrayscale(p=0.1),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.2))], p=0.2),
    ])


class CrackSegDataset(Dataset):
    """Training/validation dataset over decoded samples.

    Each item is a dict with ``image`` (3, H, W) float32 normalised, ``mask`` (1, H, W) float32
    in {0, 1}, and ``weight`` (1, H, W) float32 loss weights: 1 on valid pixels,
    ``planking_weight`` on planking (hard-negative) pixels that are not crack, 0 on padding.

    Args:
        samples: decoded samples (see :func:`load_sample`).
        crop_size: training crop side in pixels; ``None`` returns whole images (validation).
        zoom_range: random rescale factor range applied before cropping (1.0 = native GSD).
        planking_weight: loss weight on planking pixels.
        style_augment: :func:`build_augmentation` with ``style=True``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        crop_size: int | None = 256,
        zoom_range: tuple[float, float] = (0.75, 1.33),
        planking_weight: float = 3.0,
        style_augment: bool = False,
    ):
        self.samples = list(samples)
        self.crop_size = crop_size
        self.zoom_range = zoom_range
        self.planking_weight = planking_weight
        self.augment = build_augmentation(crop_size, style_augment) if crop_size else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        s = self.samples[idx]
        image = tv_tensors.Image(torch.from_numpy(s.image).permute(2, 0, 1).contiguous())
        mask = torch.from_numpy(s.mask)[None].float()
        weight = torch.ones_like(mask)
        if s.planking is not None:
            plank = torch.from_numpy(s.planking & ~s.mask)[None]
            weight[plank] = self.planking_weight
        mask, weight = tv_tensors.Mask(mask), tv_tensors.Mask(weight)
        if self.augment is not None:
            lo, hi = self.zoom_range
            zoom = math.exp(random.uniform(math.log(lo), math.log(hi)))
            h, w = image.shape[-2:]
            size = [max(8, round(h * zoom)), max(8, round(w * zoom))]
            image = v2.functional.resize(image, size, antialias=True)
            mask = v2.functional.resize(mask, size, interpolation=v2.InterpolationMode.NEAREST)
            weight = v2.functional.resize(weight, size, interpolation=v2.InterpolationMode.NEAREST)
            image, mask, weight = self.augment(image, mask, weight)
        return {
            "image": normalise(image.as_subclass(torch.Tensor)),
            "mask": mask.as_subclass(torch.Tensor).float(),
            "weight": weight.as_subclass(torch.Tensor).float(),
        }
