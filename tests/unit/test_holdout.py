"""Hold-out splits: by source photo, tiles of one photo never straddle train and hold-out."""

from engine.data import DATASETS, Sample
from engine.train import _split


def _samples(stems):
    return [Sample(stem=s, image=None, mask=None) for s in stems]


def test_photo_holdout_keeps_each_photos_tiles_together():
    stems = [f"{p}-{t}" for p in range(1000, 1040) for t in range(1, 1 + p % 5)] + ["999"]
    group = DATASETS["deepcrack-train"].source_photo
    train, hold = _split(_samples(stems), 0.1, seed=0, group=group)
    assert len(train) + len(hold) == len(stems)
    k = round(len(stems) * 0.1)
    assert k <= len(hold) < k + 5                       # whole photos, just past the target
    assert not {group(s.stem) for s in hold} & {group(s.stem) for s in train}
    again, _ = _split(_samples(stems), 0.1, seed=0, group=group)
    assert [s.stem for s in again] == [s.stem for s in train]


def test_image_holdout_is_unchanged_without_a_group():
    stems = [f"img{i}" for i in range(50)]
    train, hold = _split(_samples(stems), 0.1, seed=0)
    assert len(hold) == 5 and len(train) == 45


def test_source_photo_names():
    assert DATASETS["deepcrack-train"].source_photo("IMG_6544-4") == "IMG_6544"
    assert DATASETS["deepcrack-train"].source_photo("11114") == "11114"
    assert DATASETS["masonry"].source_photo("a_31_7") == "a_31"
    assert DATASETS["uav75-train"].source_photo("DSC_0042") == "DSC_0042"


def test_photo_holdout_never_takes_every_image():
    train, hold = _split(_samples(["5-1", "5-2", "5-3"]), 0.1, seed=0,
                         group=DATASETS["deepcrack-train"].source_photo)
    assert len(train) == 3 and hold == []
