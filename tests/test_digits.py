"""Tests of course_lib.data.digits: cluttered digits from scikit-learn's load_digits, splits, boxes, box_mass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_lib.data.digits as digits
from course_lib.data.digits import (
    SPLITS,
    box_mass,
    load_source_digits,
    make_cluttered_digits,
    split_indices,
    upscale,
)


@pytest.fixture(scope="module")
def train_set():
    return make_cluttered_digits(300, canvas=40, scale=2, n_clutter=8, seed=5, split="train")


def test_sources_are_the_real_digits():
    images, labels = load_source_digits()
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


def test_splits_partition_the_sources():
    parts = {s: split_indices(s) for s in SPLITS}
    assert [len(parts[s]) for s in SPLITS] == [1078, 359, 360]
    union = np.concatenate(list(parts.values()))
    assert len(union) == len(set(union.tolist())) == 1797  # disjoint and complete
    assert np.array_equal(split_indices("test"), parts["test"])  # deterministic
    assert not np.array_equal(split_indices("test", split_seed=1), parts["test"])


def test_shapes_dtypes_and_range(train_set):
    d = train_set
    assert d.images.shape == (300, 1, 40, 40) and d.images.dtype == torch.float32
    assert d.labels.shape == (300,) and d.labels.dtype == torch.int64
    assert d.boxes.shape == (300, 4) and d.source_index.shape == (300,)
    assert float(d.images.min()) >= 0.0 and float(d.images.max()) <= 1.0
    assert len(d) == 300 and len(d[:10]) == 10 and len(d[3]) == 1


def test_deterministic_given_seed():
    a = make_cluttered_digits(40, seed=3, split="val")
    b = make_cluttered_digits(40, seed=3, split="val")
    c = make_cluttered_digits(40, seed=4, split="val")
    for field in ("images", "labels", "boxes", "source_index"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.images, c.images)


def test_digits_come_from_their_split_only():
    for split in SPLITS:
        d = make_cluttered_digits(60, seed=1, split=split)
        assert set(d.source_index.tolist()) <= set(split_indices(split).tolist())
    train = set(make_cluttered_digits(200, split="train").source_index.tolist())
    test = set(make_cluttered_digits(200, split="test").source_index.tolist())
    assert not train & test


def test_clutter_comes_from_the_same_split_only(monkeypatch):
    images, labels = load_source_digits()
    marked = images * 0.5  # every stroke at most 0.5 ...
    others = np.setdiff1d(np.arange(1797), split_indices("test"))
    marked[others] = 1.0  # ... except the images of the other splits, solid 1.0
    monkeypatch.setattr(digits, "_load", lambda: (marked, labels))
    d = make_cluttered_digits(100, n_clutter=12, seed=2, split="test")
    assert float(d.images.max()) <= 0.5  # no fragment of a train/val image appears


def test_labels_cover_all_classes(train_set):
    counts = torch.bincount(train_set.labels, minlength=10)
    assert (counts > 0).all()
    images, labels = load_source_digits()
    assert torch.equal(train_set.labels, torch.from_numpy(labels[train_set.source_index.numpy()]))


@pytest.mark.parametrize("scale,canvas", [(2, 40), (3, 40), (1, 20)])
def test_boxes_inside_canvas_and_hold_the_digit(scale, canvas):
    d = make_cluttered_digits(80, canvas=canvas, scale=scale, seed=7, split="train")
    x0, y0, x1, y1 = d.boxes.unbind(1)
    assert bool(((0 <= x0) & (x0 < x1) & (x1 <= canvas) & (0 <= y0) & (y0 < y1) & (y1 <= canvas)).all())
    images, _ = load_source_digits()
    for i in range(len(d)):
        digit = upscale(images[int(d.source_index[i])], scale)
        rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
        ink = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # the digit's tight box
        a, b, c, e = (int(v) for v in d.boxes[i])
        crop = d.images[i, 0, b:e, a:c].numpy()
        assert crop.shape == ink.shape  # the box is exactly the digit's ink extent ...
        assert (crop >= ink).all()  # ... and every ink pixel is on the canvas there (max composition)


def test_clutter_is_present_and_avoids_the_digit_by_default():
    d = make_cluttered_digits(50, n_clutter=8, seed=0)
    clean = make_cluttered_digits(50, n_clutter=0, seed=0)
    assert float((d.images > 0).float().sum()) > 1.5 * float((clean.images > 0).float().sum())
    # without clutter only the digit has ink, all inside its box
    for i in range(50):
        a, b, c, e = (int(v) for v in clean.boxes[i])
        outside = clean.images[i, 0].clone()
        outside[b:e, a:c] = 0
        assert float(outside.sum()) == 0.0


def test_validation_errors():
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val', 'test'\), got 'training'"):
        make_cluttered_digits(4, split="training")
    with pytest.raises(ValueError, match=r"canvas=20 is smaller than the upscaled digit \(8 \* scale = 24\)"):
        make_cluttered_digits(4, canvas=20, scale=3)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        make_cluttered_digits(0)
    with pytest.raises(ValueError, match="fragment must lie in"):
        make_cluttered_digits(4, fragment=9)
    with pytest.raises(TypeError, match="scale must be an int"):
        make_cluttered_digits(4, scale=2.5)


# --------------------------------------------------------------------------------------------------
# box_mass
# --------------------------------------------------------------------------------------------------
def test_box_mass_of_indicator_is_one(train_set):
    d = train_set[:20]
    maps = torch.zeros(20, 40, 40)
    for i, (a, b, c, e) in enumerate(d.boxes.tolist()):
        maps[i, b:e, a:c] = 1.0
    torch.testing.assert_close(box_mass(maps, d.boxes), torch.ones(20))
    torch.testing.assert_close(box_mass(1.0 - maps, d.boxes), torch.zeros(20))


def test_box_mass_uniform_is_area_fraction(train_set):
    d = train_set[:20]
    x0, y0, x1, y1 = d.boxes.double().unbind(1)
    expected = ((x1 - x0) * (y1 - y0) / 1600).float()
    torch.testing.assert_close(box_mass(torch.ones(20, 40, 40), d.boxes), expected)
    # a coarser map (a 10x10 feature map of a 40x40 canvas) gives the same chance level
    torch.testing.assert_close(box_mass(torch.ones(20, 10, 10), d.boxes, canvas_size=40), expected)


def test_box_mass_at_lower_resolution_scales_boxes():
    boxes = torch.tensor([[8, 4, 16, 12], [10, 10, 14, 14]])  # (x0, y0, x1, y1) on a 20x20 canvas
    maps = torch.zeros(2, 5, 5)  # each cell covers 4x4 canvas pixels
    maps[0, 1:3, 2:4] = 1.0  # exactly the first box
    maps[1, 2, 2] = 1.0  # the cell [8, 12) x [8, 12) overlaps the second box on 2x2 of its 4x4 pixels
    torch.testing.assert_close(box_mass(maps, boxes, canvas_size=(20, 20)), torch.tensor([1.0, 0.25]))


def test_box_mass_errors():
    boxes = torch.tensor([[0, 0, 4, 4]])
    with pytest.raises(ValueError, match="nonnegative"):
        box_mass(-torch.ones(1, 8, 8), boxes)
    with pytest.raises(ValueError, match="no mass"):
        box_mass(torch.zeros(1, 8, 8), boxes)
    with pytest.raises(ValueError, match=r"boxes must have shape \(B, 4\) = \(2, 4\)"):
        box_mass(torch.ones(2, 8, 8), boxes)
    with pytest.raises(ValueError, match=r"attention_maps must have shape \(B, h, w\)"):
        box_mass(torch.ones(8, 8), boxes)
    with pytest.raises(ValueError, match="inside the canvas"):
        box_mass(torch.ones(1, 8, 8), torch.tensor([[0, 0, 12, 4]]))
    with pytest.raises(ValueError, match="x0 < x1"):
        box_mass(torch.ones(1, 8, 8), torch.tensor([[4, 0, 4, 4]]))
    with pytest.raises(TypeError, match="attention_maps must be a torch.Tensor"):
        box_mass(np.ones((1, 8, 8)), boxes)
