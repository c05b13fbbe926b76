"""The accelerator's input pipeline: luma, bilinear resize, histogram equalization.

This module is copied verbatim to the PYNQ board and imported there, so it
must depend on nothing but numpy and the standard library.  Training and
the board both call :func:`prepare`, and every step rounds with integer
arithmetic or exactly representable float operations so the two produce
bit-identical uint8 tensors.  Standardization is deliberately absent: it is
folded into the model's first layer, so the pipeline output stays uint8.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["to_luma", "equalize_hist", "resize", "prepare", "Preprocessing"]

# BT.601 luma weights scaled by 1000; they sum to exactly 1000, so white
# maps to 255 and integer arithmetic gives the same answer on every machine.
_LUMA_WEIGHTS = np.array([299, 587, 114], dtype=np.int64)


def _require_uint8(img: Any, what: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8, got {arr.dtype}")
    return arr


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """Return the BT.601 luma channel Y = 0.299 R + 0.587 G + 0.114 B as uint8.

    Accepts (H, W, 3) or (N, H, W, 3) RGB.  Y is rounded to nearest with
    ties rounded up (computed exactly as ``(299 R + 587 G + 114 B + 500) //
    1000``).  Grayscale input, (H, W) or with a trailing axis of size 1, is
    returned as a uint8 copy without that axis.
    """
    arr = _require_uint8(rgb, "to_luma input")
    if arr.ndim == 2:
        return arr.copy()
    if arr.ndim >= 3 and arr.shape[-1] == 1:
        return arr[..., 0].copy()
    if arr.ndim in (3, 4) and arr.shape[-1] == 3:
        y = (arr.astype(np.int64) @ _LUMA_WEIGHTS + 500) // 1000
        return np.clip(y, 0, 255).astype(np.uint8)
    raise ValueError(
        f"to_luma expects (H,W), (...,1) or (...,3) images, got shape {arr.shape}"
    )


def equalize_hist(img: np.ndarray) -> np.ndarray:
    """Histogram-equalize a uint8 image (H, W) or each image of a batch (N, H, W).

    Classic CDF method over 256 levels:
    ``lut = round((cdf - cdf_min) / (total - cdf_min) * 255)`` where
    ``cdf_min`` is the CDF at the darkest level present; rounding is to
    nearest with ties up, done in integers.  A constant image has no
    contrast to stretch and is returned unchanged.
    """
    arr = _require_uint8(img, "equalize_hist input")
    if arr.ndim not in (2, 3):
        raise ValueError(f"equalize_hist expects (H,W) or (N,H,W), got shape {arr.shape}")
    batch = arr.reshape((-1,) + arr.shape[-2:])
    n = batch.shape[0]
    total = batch.shape[1] * batch.shape[2]
    if n == 0 or total == 0:
        return arr.copy()

    # One bincount for the whole batch: offset each image's levels by 256*i.
    flat = batch.reshape(n, total).astype(np.int64)
    offsets = (np.arange(n, dtype=np.int64) * 256)[:, None]
    hist = np.bincount((flat + offsets).ravel(), minlength=256 * n).reshape(n, 256)
    cdf = np.cumsum(hist, axis=1)
    first_level = np.argmax(hist > 0, axis=1)
    cdf_min = cdf[np.arange(n), first_level][:, None]
    denom = total - cdf_min
    constant = denom[:, 0] == 0
    safe = np.where(denom == 0, 1, denom)
    # Levels below cdf_min never occur in the image; clipping them to 0 only
    # keeps the table in range.
    num = np.clip(cdf - cdf_min, 0, None) * 255
    lut = (2 * num + safe) // (2 * safe)
    lut[constant] = np.arange(256)
    out = np.take_along_axis(lut, flat, axis=1).astype(np.uint8)
    return out.reshape(arr.shape)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Pixel centres aligned (align_corners=False); sources left of the first
    # centre clamp to it, as in torch.nn.functional.interpolate.
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    return lo, hi, frac


def _resize_axes(arr: np.ndarray, size: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    out = arr.astype(np.float64)
    for axis, n_out in zip(axes, size):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        lo, hi, frac = _axis_weights(n_in, n_out)
        shape = [1] * out.ndim
        shape[axis] = n_out
        frac = frac.reshape(shape)
        out = np.take(out, lo, axis=axis) * (1.0 - frac) + np.take(out, hi, axis=axis) * frac
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
            raise ValueError(f"size must be two positive ints, got {size!r}")
    return int(h), int(w)


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize uint8 images to ``size = (height, width)``.

    Layouts: (H, W), (H, W, C), (N, H, W) and (N, H, W, C).  A 3-D array is
    taken as one channels-last image when its last axis is 1, 3 or 4, and as
    a grayscale batch otherwise.  Sampling is pixel-centre aligned like
    ``align_corners=False`` without antialiasing; the result is rounded to
    nearest (ties up).  Same size in and out returns an unchanged copy.
    """
    arr = _require_uint8(img, "resize input")
    size = _check_size(size)
    if arr.ndim == 2:
        axes = (0, 1)
    elif arr.ndim == 3:
        axes = (0, 1) if arr.shape[-1] in (1, 3, 4) else (1, 2)
    elif arr.ndim == 4:
        axes = (1, 2)
    else:
        raise ValueError(f"resize expects 2-D to 4-D images, got shape {arr.shape}")
    if (arr.shape[axes[0]], arr.shape[axes[1]]) == size:
        return arr.copy()
    if 0 in arr.shape:
        raise ValueError(f"cannot resize an empty image of shape {arr.shape}")
    return _resize_axes(arr, size, axes)


def _to_hwc(img: Any, luma: bool) -> np.ndarray:
    arr = _require_uint8(img, "prepare image")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"prepare expects (H,W), (H,W,1) or (H,W,3) images, got {arr.shape}")
    if luma and arr.shape[-1] == 3:
        arr = to_luma(arr)[:, :, None]
    return arr


def prepare(
    images: np.ndarray | Sequence[np.ndarray],
    *,
    size: tuple[int, int],
    luma: bool = True,
    equalize: bool = True,
) -> np.ndarray:
    """Run the accelerator's input pipeline and return uint8 NCHW (N, C, h, w).

    ``images`` is a uint8 batch (N, H, W, 3), (N, H, W, 1) or (N, H, W), or a
    list of (H, W[, C]) arrays of differing sizes.  Steps: luma (if ``luma``
    and the image is RGB), bilinear resize to ``size = (h, w)``, histogram
    equalization per image (if ``equalize``).  C is 1 for grayscale or luma
    output; RGB with ``luma=False`` keeps C = 3 and equalizes each channel.
    """
    size = _check_size(size)
    if isinstance(images, np.ndarray):
        arr = _require_uint8(images, "prepare input")
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
            raise ValueError(
                f"prepare expects a batch (N,H,W), (N,H,W,1) or (N,H,W,3), got {arr.shape}"
            )
        if luma and arr.shape[-1] == 3:
            arr = to_luma(arr)[..., None]
        nhwc = resize(arr, size) if arr.shape[0] else arr.reshape((0,) + size + arr.shape[-1:])
    else:
        resized = [resize(_to_hwc(img, luma), size) for img in images]
        if not resized:
            return np.zeros((0, 1) + size, dtype=np.uint8)
        channels = {r.shape[-1] for r in resized}
        if len(channels) != 1:
            raise ValueError(f"prepare got a mix of channel counts {sorted(channels)}")
        nhwc = np.stack(resized)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    if equalize and nchw.shape[0]:
        n, c, h, w = nchw.shape
        nchw = equalize_hist(nchw.reshape(n * c, h, w)).reshape(n, c, h, w)
    return nchw


@dataclass(frozen=True)
class Preprocessing:
    """Preprocessing settings saved with a trained model and replayed on the board.

    ``size`` is (height, width).  Calling the object runs :func:`prepare`.
    """

    size: tuple[int, int]
    luma: bool = True
    equalize: bool = True

    def __post_init__(self) -> None:
        # frozen dataclass: normalise JSON lists to a tuple via object.__setattr__
        object.__setattr__(self, "size", _check_size(self.size))
        for name in ("luma", "equalize"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                value = getattr(self, name)
                raise ValueError(f"Preprocessing.{name} must be a bool, got {value!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"size": list(self.size), "luma": self.luma, "equalize": self.equalize}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        """Build from :meth:`to_dict` output; unknown or missing keys are an error."""
        keys = {"size", "luma", "equalize"}
        unknown = set(d) - keys
        missing = keys - set(d)
        if unknown or missing:
            raise ValueError(
                f"Preprocessing dict: unknown keys {sorted(unknown)}, "
                f"missing keys {sorted(missing)}"
            )
        return cls(size=d["size"], luma=d["luma"], equalize=d["equalize"])

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Run :func:`prepare` with these settings; returns uint8 (N, C, h, w)."""
        return prepare(images, size=self.size, luma=self.luma, equalize=self.equalize)
