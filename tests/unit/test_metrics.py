import numpy as np
import pytest

from engine.metrics import SegmentationMeter, confusion_counts, local_width_px, scores


def test_confusion_matrix_by_hand():
    target = np.array([[1, 1, 0, 0],
                       [1, 0, 0, 0],
                       [0, 0, 0, 1]], bool)
    pred = np.array([[1, 0, 1, 0],
                     [1, 0, 0, 0],
                     [0, 0, 1, 1]], bool)
    # TP: (0,0) (1,0) (2,3) = 3; FP: (0,2) (2,2) = 2; FN: (0,1) = 1; TN: 6
    assert confusion_counts(pred, target) == {"tp": 3, "fp": 2, "fn": 1, "tn": 6}
    s = scores(3, 2, 1)
    assert s["precision"] == pytest.approx(3 / 5)
    assert s["recall"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert s["iou"] == pytest.approx(3 / 6)


def test_meter_pools_over_images_and_threshold_05():
    t1 = np.zeros((4, 4), bool)
    t1[1, :] = True                       # 4 crack pixels
    p1 = np.zeros((4, 4))
    p1[1, :3] = 0.9                       # 3 TP, 1 FN
    p1[3, 0] = 0.5                        # 1 FP exactly at the threshold (p >= 0.5)
    t2 = np.zeros((4, 4), bool)
    p2 = np.full((4, 4), 0.49)            # no predictions, no crack: image IoU 1
    m = SegmentationMeter()
    m.update(p1, t1)
    m.update(p2, t2)
    r = m.compute()["at_0.5"]
    assert r["counts"] == {"tp": 3, "fp": 1, "fn": 1}
    assert r["iou"] == pytest.approx(3 / 5)
    assert r["mean_image_iou"] == pytest.approx((3 / 5 + 1.0) / 2)


def test_ods_finds_best_threshold():
    t = np.zeros((10, 10), bool)
    t[5, :] = True
    p = np.zeros((10, 10))
    p[5, :] = 0.3          # cracks scored 0.3
    p[0, :] = 0.1          # background scored 0.1
    m = SegmentationMeter()
    m.update(p, t)
    out = m.compute()
    assert out["at_0.5"]["iou"] == 0.0
    assert out["ods"]["iou"] == pytest.approx(1.0)
    assert 0.1 < out["ods"]["threshold"] <= 0.3


def test_tolerance_forgives_one_pixel_shift():
    t = np.zeros((20, 20), bool)
    t[10, 2:18] = True
    p = np.zeros((20, 20))
    p[11, 2:18] = 1.0      # the same crack one pixel lower
    m = SegmentationMeter(tolerance_px=2)
    m.update(p, t)
    r = m.compute()["at_0.5"]
    assert r["iou"] == 0.0
    assert r["tolerant"]["precision"] == 1.0 and r["tolerant"]["recall"] == 1.0


@pytest.mark.parametrize("width", [1, 3, 5, 7])
def test_local_width_of_straight_cracks(width):
    t = np.zeros((40, 60), bool)
    t[20 - width // 2: 20 + width // 2 + 1, 10:50] = True
    w = local_width_px(t)
    assert np.median(w[t]) == pytest.approx(width, abs=0.5)


def test_thin_crack_recall_and_planking_fpr():
    t = np.zeros((30, 30), bool)
    t[5, 2:28] = True                 # thin (1 px), 26 px
    t[15:22, 2:28] = True             # wide (7 px)
    plank = np.zeros((30, 30), bool)
    plank[:, 25:30] = True            # 5 columns, of which crack rows excluded
    p = np.zeros((30, 30))
    p[15:22, 2:28] = 1.0              # finds only the wide crack
    p[0:3, 26:30] = 1.0               # 12 false positives on planking
    m = SegmentationMeter()
    m.update(p, t, plank)
    r = m.compute()["at_0.5"]
    assert r["thin_crack_recall"] == 0.0
    plank_neg = plank & ~t
    assert r["planking_fpr"] == pytest.approx(12 / plank_neg.sum())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        SegmentationMeter().update(np.zeros((3, 3)), np.zeros((3, 4), bool))


def test_per_image_rows_name_each_image_with_its_counts():
    t1 = np.zeros((4, 4), bool)
    t1[1, :] = True
    p1 = np.zeros((4, 4))
    p1[1, :3] = 0.9                       # 3 TP, 1 FN
    p1[3, 0] = 0.7                        # 1 FP
    m = SegmentationMeter()
    m.update(p1, t1, name="a")
    m.update(np.zeros((4, 4)), np.zeros((4, 4), bool))   # unnamed: its index
    rows = m.compute()["per_image"]
    assert rows == [{"image": "a", "tp": 3, "fp": 1, "fn": 1, "iou": 0.6},
                    {"image": "1", "tp": 0, "fp": 0, "fn": 0, "iou": 1.0}]
