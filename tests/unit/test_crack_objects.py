"""Crack objects (issue 25): the object rules drop whole components by length, elongation
and peak probability, and the vectorised frame keeps its crack ids sequential."""

from __future__ import annotations

import numpy as np
import pytest

from geodata.crack_objects import ObjectFilter
from geodata.vectorise import crack_labels, vectorise_cracks


def _scene() -> np.ndarray:
    prob = np.zeros((200, 200), np.float32)
    prob[20:23, 10:190] = 0.9   # a crack: 180 px long, 3 px wide, peak 0.9
    prob[60:63, 10:40] = 0.9    # a short line: 30 px
    prob[100:130, 100:130] = 0.9  # a blob: 30 x 30
    prob[160:163, 10:190] = 0.6   # a long faint line: peak 0.6
    return prob


def test_each_rule_drops_its_own_kind_of_component():
    prob = _scene()
    _, n = crack_labels(prob)
    assert n == 4
    _, n = crack_labels(prob, object_filter=ObjectFilter(min_length_px=50))
    assert n == 2  # the short line and the blob (skeleton ~ 1-30 px) go
    _, n = crack_labels(prob, object_filter=ObjectFilter(min_elongation=6))
    assert n == 3  # the blob goes
    _, n = crack_labels(prob, object_filter=ObjectFilter(min_peak_probability=0.75))
    assert n == 3  # the faint line goes
    labels, n = crack_labels(prob, object_filter=ObjectFilter(
        min_length_px=50, min_elongation=6, min_peak_probability=0.75))
    assert n == 1 and labels[21, 100] == 1 and labels[161, 100] == 0


def test_metre_rule_uses_the_ground_sample_distance():
    prob = _scene()
    rule = ObjectFilter(min_length_m=0.5)
    _, n = crack_labels(prob, pixel_size_m=0.001, object_filter=rule)  # 0.18 m at most
    assert n == 0
    _, n = crack_labels(prob, pixel_size_m=0.01, object_filter=rule)  # 1.8 m crack, 1.8 m line
    assert n == 2


def test_vectorised_frame_is_renumbered_after_the_rules():
    frame = vectorise_cracks(_scene(), None, None, pixel_size_m=0.001,
                             object_filter=ObjectFilter(min_elongation=6))
    assert list(frame["crack_id"]) == [1, 2, 3]
    assert frame["max_probability"].min() >= 0.6


def test_bad_rule_is_refused():
    with pytest.raises(ValueError, match="min_elongation"):
        ObjectFilter(min_elongation=-1)
