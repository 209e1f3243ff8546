"""pack-data: a smaller copy that decodes to the same pixels and pairs the same way."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import dataset_samples, load_sample
from engine.pack import PackError, pack_training_data


def _write_set(root: Path, folder: str, suffix: str, n: int = 2) -> None:
    rng = np.random.default_rng(0)
    (root / folder / "images").mkdir(parents=True)
    (root / folder / "masks").mkdir(parents=True)
    for i in range(n):
        img = np.clip(rng.normal(128, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / folder / "images" / f"p{i}_{i + 1}{suffix}")
        mask = np.zeros((40, 48), np.uint8)
        mask[10:12, :] = 255
        Image.fromarray(mask).save(root / folder / "masks" / f"p{i}_{i + 1}.png")


def test_pack_keeps_pixels_and_pairing(tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    _write_set(src, "segmentation/masonry", ".png")
    _write_set(src, "segmentation/deepcrack/train", ".jpg")
    report = pack_training_data(out, data_root=src, sets=["masonry", "deepcrack-train"],
                                progress=False)
    assert set(report["sets"]) == {"masonry", "deepcrack-train"}
    assert report["bytes_after"] <= report["bytes_before"]
    for name in ("masonry", "deepcrack-train"):
        a, _ = dataset_samples(name, src)
        b, _ = dataset_samples(name, out)
        assert [p.stem for p in a] == [p.stem for p in b]
        for pa, pb in zip(a, b, strict=True):
            sa, sb = load_sample(pa), load_sample(pb)
            assert np.array_equal(sa.image, sb.image) and np.array_equal(sa.mask, sb.mask)
    # a second run over the same folder replaces, it does not add a second image per stem
    pack_training_data(out, data_root=src, sets=["masonry"], progress=False)
    assert len(list((out / "segmentation/masonry/images").iterdir())) == 2


def test_pack_refuses_a_copy_with_other_pixels(tmp_path: Path, monkeypatch):
    src = tmp_path / "src"
    _write_set(src, "segmentation/masonry", ".png", n=1)
    import engine.pack as pack

    real = pack.read_rgb
    monkeypatch.setattr(pack, "read_rgb",
                        lambda p: real(p) if p.suffix == ".png" else real(p) // 2)
    with pytest.raises(PackError, match="does not decode to the pixels"):
        pack_training_data(tmp_path / "out", data_root=src, sets=["masonry"], progress=False)


def test_pack_unknown_set_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="Unknown dataset"):
        pack_training_data(tmp_path, data_root=tmp_path, sets=["nope"], progress=False)
