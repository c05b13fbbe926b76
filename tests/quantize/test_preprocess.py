"""Tests for quantize.preprocess, the numpy-only input pipeline shared with the board."""

from __future__ import annotations

import ast
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga.quantize import preprocess
from bnn2fpga.quantize.preprocess import Preprocessing, equalize_hist, prepare, resize, to_luma


def _round_half_up(x: Fraction) -> int:
    return int(np.floor(x + Fraction(1, 2)))


# --- imports -----------------------------------------------------------------


def test_module_imports_only_numpy_and_stdlib():
    tree = ast.parse(Path(preprocess.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports break the copy on the board"
            roots.add(node.module.split(".")[0])
    non_stdlib = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert non_stdlib == {"numpy"}


# --- to_luma -----------------------------------------------------------------


def test_luma_hand_computed_pixel():
    # 0.299*10 + 0.587*200 + 0.114*50 = 126.09
    assert to_luma(np.array([[[10, 200, 50]]], dtype=np.uint8))[0, 0] == 126
    # 0.299*255 + 0.587*255 + 0.114*255 = 255 exactly: no overflow past 255
    assert to_luma(np.full((1, 1, 3), 255, np.uint8))[0, 0] == 255


def test_luma_matches_exact_rounding_on_random_pixels():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    y = to_luma(rgb)
    assert y.shape == (4, 5, 6) and y.dtype == np.uint8
    w = (Fraction(299, 1000), Fraction(587, 1000), Fraction(114, 1000))
    for idx in np.ndindex(rgb.shape[:-1]):
        r, g, b = (int(v) for v in rgb[idx])
        assert y[idx] == _round_half_up(w[0] * r + w[1] * g + w[2] * b)


def test_luma_rounds_ties_up():
    # 299*r + 587*g + 114*b ending in 500 is an exact .5 tie
    r, g, b = next(
        (r, g, b)
        for r in range(256)
        for g in range(256)
        for b in range(256)
        if (299 * r + 587 * g + 114 * b) % 1000 == 500
    )
    y = int(to_luma(np.array([[[r, g, b]]], dtype=np.uint8))[0, 0])
    assert 1000 * y == 299 * r + 587 * g + 114 * b + 500


def test_luma_grayscale_passthrough():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(to_luma(gray), gray)
    np.testing.assert_array_equal(to_luma(gray[:, :, None]), gray)
    assert to_luma(gray[:, :, None]).shape == (3, 4)


def test_luma_rejects_float_input():
    with pytest.raises(TypeError, match="uint8"):
        to_luma(np.zeros((2, 2, 3), dtype=np.float32))


# --- equalize_hist -----------------------------------------------------------


def test_equalize_hand_computed():
    # hist {0:2, 1:1, 2:1}, cdf 2,3,4, cdf_min 2: 1 -> round(127.5) = 128
    img = np.array([[0, 0], [1, 2]], dtype=np.uint8)
    np.testing.assert_array_equal(equalize_hist(img), [[0, 0], [128, 255]])


def test_equalize_low_contrast_uses_full_range_and_is_monotone():
    rng = np.random.default_rng(2)
    img = rng.integers(100, 111, size=(20, 20), dtype=np.uint8)
    out = equalize_hist(img)
    assert out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    levels = np.unique(img)
    mapped = [out[img == v][0] for v in levels]
    # one output level per input level, strictly increasing
    assert all(np.all(out[img == v] == m) for v, m in zip(levels, mapped))
    assert np.all(np.diff(np.array(mapped, dtype=int)) > 0)


def test_equalize_constant_image_unchanged():
    img = np.full((5, 7), 42, dtype=np.uint8)
    np.testing.assert_array_equal(equalize_hist(img), img)


def test_equalize_batch_is_per_image():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 50, size=(8, 8), dtype=np.uint8)
    b = rng.integers(200, 256, size=(8, 8), dtype=np.uint8)
    c = np.full((8, 8), 9, dtype=np.uint8)
    out = equalize_hist(np.stack([a, b, c]))
    for i, img in enumerate((a, b, c)):
        np.testing.assert_array_equal(out[i], equalize_hist(img))


# --- resize ------------------------------------------------------------------


def test_resize_upscale_hand_computed():
    img = np.array([[0, 100], [200, 40]], dtype=np.uint8)
    # sample points -0.25(clamped to 0), 0.25, 0.75, 1.25(clamped to 1)
    expected = [
        [0, 25, 75, 100],
        [50, 59, 76, 85],  # 58.75 -> 59, 76.25 -> 76
        [150, 126, 79, 55],  # 126.25 -> 126, 78.75 -> 79
        [200, 160, 80, 40],
    ]
    out = resize(img, (4, 4))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_resize_downscale_averages_pixel_pairs():
    img = np.array([[0, 10, 20, 31]], dtype=np.uint8)
    # centres of the 2 output pixels land halfway between input pairs; 25.5 rounds up
    np.testing.assert_array_equal(resize(img, (1, 2)), [[5, 26]])


def test_resize_identity_returns_copy():
    img = np.random.default_rng(4).integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    out = resize(img, (6, 9))
    np.testing.assert_array_equal(out, img)
    assert out is not img and not np.shares_memory(out, img)


def test_resize_batch_and_channels_match_single_image():
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, size=(3, 11, 7, 3), dtype=np.uint8)
    out = resize(batch, (5, 9))
    assert out.shape == (3, 5, 9, 3)
    for i in range(3):
        np.testing.assert_array_equal(out[i], resize(batch[i], (5, 9)))
        for c in range(3):
            np.testing.assert_array_equal(out[i, :, :, c], resize(batch[i, :, :, c], (5, 9)))
    gray_batch = batch[..., 0].copy()
    assert resize(gray_batch, (5, 9)).shape == (3, 5, 9)


@pytest.mark.parametrize("shape", [(13, 17), (50, 40), (32, 32), (7, 64)])
def test_resize_agrees_with_torch_bilinear(shape):
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(6).integers(0, 256, size=shape, dtype=np.uint8)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(img.astype(np.float64))[None, None],
        size=(32, 32),
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )[0, 0].numpy()
    ref = np.clip(np.floor(ref + 0.5), 0, 255)
    out = resize(img, (32, 32)).astype(np.float64)
    # only floating-point noise at exact .5 ties may differ
    assert np.abs(out - ref).max() <= 1
    assert np.mean(out == ref) > 0.99


def test_resize_rejects_bad_size():
    img = np.zeros((4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="positive"):
        resize(img, (0, 4))
    with pytest.raises(ValueError, match="height, width"):
        resize(img, 4)


# --- prepare -----------------------------------------------------------------


def _varied_rgb(n: int, seed: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        for h, w in rng.integers(20, 60, size=(n, 2))
    ]


def test_prepare_list_of_varied_rgb():
    images = _varied_rgb(5)
    assert len({im.shape for im in images}) > 1
    out = prepare(images, size=(32, 32))
    assert out.shape == (5, 1, 32, 32) and out.dtype == np.uint8
    for i, img in enumerate(images):
        expected = equalize_hist(resize(to_luma(img), (32, 32)))
        np.testing.assert_array_equal(out[i, 0], expected)
        assert out[i].min() == 0 and out[i].max() == 255


def test_prepare_is_deterministic_and_array_equals_list():
    rng = np.random.default_rng(8)
    batch = rng.integers(0, 256, size=(4, 40, 30, 3), dtype=np.uint8)
    a = prepare(batch, size=(16, 24))
    b = prepare(list(batch), size=(16, 24))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, prepare(batch, size=(16, 24)))
    assert a.shape == (4, 1, 16, 24)


def test_prepare_grayscale_batch_and_flags():
    rng = np.random.default_rng(9)
    gray = rng.integers(60, 90, size=(3, 28, 28), dtype=np.uint8)
    plain = prepare(gray, size=(28, 28), equalize=False)
    assert plain.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(plain[:, 0], gray)
    eq = prepare(gray, size=(28, 28))
    np.testing.assert_array_equal(eq[:, 0], equalize_hist(gray))

    rgb = rng.integers(0, 256, size=(2, 10, 10, 3), dtype=np.uint8)
    kept = prepare(rgb, size=(10, 10), luma=False, equalize=False)
    assert kept.shape == (2, 3, 10, 10)
    np.testing.assert_array_equal(kept, rgb.transpose(0, 3, 1, 2))


def test_prepare_rejects_unknown_layout():
    with pytest.raises(ValueError, match="batch"):
        prepare(np.zeros((8, 8, 3, 2), dtype=np.uint8), size=(4, 4))


# --- Preprocessing -----------------------------------------------------------


def test_preprocessing_json_round_trip_and_call():
    p = Preprocessing(size=(32, 32), luma=True, equalize=False)
    d = json.loads(json.dumps(p.to_dict()))
    q = Preprocessing.from_dict(d)
    assert q == p and q.size == (32, 32)
    images = _varied_rgb(3, seed=10)
    np.testing.assert_array_equal(q(images), prepare(images, size=(32, 32), equalize=False))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(size=(0, 32), luma=True, equalize=True),
        dict(size=(32.0, 32), luma=True, equalize=True),
        dict(size=(32, 32, 1), luma=True, equalize=True),
        dict(size=(32, 32), luma="yes", equalize=True),
        dict(size=(True, 32), luma=True, equalize=True),
    ],
)
def test_preprocessing_validates(kwargs):
    with pytest.raises(ValueError):
        Preprocessing(**kwargs)


def test_preprocessing_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown keys"):
        Preprocessing.from_dict({"size": [8, 8], "luma": True, "equalize": True, "mean": 0.5})
