"""Images in, labels out: the host side of the accelerator, exactly as in training and verification.

preprocess (the training code) -> float pre-processing the network did before its input
quantizer (e.g. 2x - 1) -> input quantization (QONNX semantics) -> the host ops before the
accelerator (e.g. NCHW -> NHWC) -> fold and pack -> accelerator -> unpack -> host ops after it
(layout, the network's float head: scale, bias, a last BatchNorm's affine, TopK) -> the
per-class head affine of zoo models -> top-1 label and score.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import io_spec as iospec
from .errors import DriverError
from .host_ops import HEAD_OPS, float_pre, host_op
from .input_quant import InputQuantSpec
from .packing import datatype, pack, unpack
from .postprocess import apply_head, top1
from .preprocess import Preprocessing

__all__ = ["Prediction", "Classifier"]

# The host holds one call's batch x frame elements several times over (int64 codes,
# float32 images, packed bits): 2**26 keeps each copy within 512 MiB and still allows
# hundreds of ImageNet-size frames per call.
MAX_BATCH_ELEMENTS = 2**26


@dataclass(frozen=True)
class Prediction:
    """The top-1 class of one image."""

    index: int
    label: str
    score: float  # softmax probability of the top class


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e.max(axis=-1) / e.sum(axis=-1)


class Classifier:
    """A deployment package bound to an accelerator (on the board or simulated)."""

    def __init__(self, package, accelerator):
        self.spec = package if isinstance(package, iospec.IOSpec) else iospec.load(Path(package))
        self.accelerator = accelerator
        spec = self.spec
        try:
            self.preprocessing = Preprocessing.from_dict(spec.preprocessing) if spec.preprocessing else None
            self.quant = InputQuantSpec(**spec.input_quant) if spec.input_quant else None
        except (TypeError, ValueError) as e:
            raise DriverError(f"{spec.path}: {e}") from None
        # Float pre-processing before the quantizer (e.g. 2x - 1), checked once here.
        float_pre(spec.input_float_ops, np.zeros((1, *spec.host_shape[1:]), np.float32))
        self._pre = [(op["op"], host_op(op, "before")) for op in spec.input.host_ops]
        self._post = [(op["op"], host_op(op, "after")) for op in spec.output.host_ops]
        # A network that ends in TopK / ArgMax outputs labels, not one score per class.
        self.outputs_labels = bool(spec.output.host_ops) and spec.output.host_ops[-1]["op"] in HEAD_OPS
        # Host ops after the accelerator (layout, elementwise float head) keep the number of
        # outputs, so they are the classes; a count that differs would index past the names or
        # the confusion matrix.
        n_out = int(np.prod(spec.output.shape[1:]))
        if not self.outputs_labels and len(spec.class_names) != n_out:
            raise DriverError(f"{spec.path}: field 'class_names': {len(spec.class_names)} names for the "
                              f"accelerator's {n_out} outputs (one name per class)")
        self._check_accelerator()

    def _check_accelerator(self) -> None:
        # A simulated accelerator knows its model's I/O; a mismatch means the package
        # and the build (or bitstream) are from different designs.
        sig = getattr(self.accelerator, "io_signature", None)
        if not sig:
            return
        spec = self.spec
        mine = {"input_datatype": spec.input.datatype, "input_folded_shape": list(spec.input.folded_shape[1:]),
                "output_datatype": spec.output.datatype, "output_folded_shape": list(spec.output.folded_shape[1:])}
        for key, value in mine.items():
            theirs = sig.get(key)
            theirs = list(theirs[1:]) if key.endswith("shape") and theirs is not None else theirs
            if theirs is not None and theirs != value:
                raise DriverError(f"the accelerator does not match {spec.path}: {key.replace('_', ' ')} "
                                  f"{theirs} != {value}")
        theirs = sig.get("dataflow_sha256")
        if theirs and spec.dataflow_sha256 and theirs != spec.dataflow_sha256:
            raise DriverError(f"the accelerator runs another build's dataflow model than {spec.path} describes "
                              "(dataflow_sha256 differs); use the package of that build")

    # --- the stages, each usable on its own --------------------------------------------

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """uint8 NCHW tensors from raw uint8 images, with the training preprocessing."""
        if self.preprocessing is None:
            raise DriverError(f"{self.spec.path} has no preprocessing settings, so raw images cannot be classified")
        x = self.preprocessing(images)
        if x.shape[1:] != self.spec.host_shape[1:]:
            raise DriverError(f"preprocessing gives {list(x.shape[1:])} but the network takes "
                              f"{list(self.spec.host_shape[1:])} ({self.spec.path})")
        return x

    def to_accelerator(self, x: np.ndarray) -> np.ndarray:
        """Accelerator input codes (normal shape) from float network inputs (NCHW)."""
        x = np.asarray(x, dtype=np.float32)
        x = float_pre(self.spec.input_float_ops, x)
        codes = self._apply(self._pre, self.quant.quantize(x) if self.quant else x, "before")
        want = (len(x), *self.spec.input.shape[1:])
        if codes.shape != want:
            raise DriverError(f"host ops give shape {list(codes.shape)}, the accelerator takes {list(want)}")
        return codes

    def pack_input(self, codes: np.ndarray) -> bytes:
        """DMA bytes for a batch of accelerator inputs (normal shape)."""
        folded = codes.reshape(len(codes), *self.spec.input.folded_shape[1:])
        try:
            return pack(folded, self.spec.input.datatype).tobytes()
        except ValueError as e:
            raise DriverError(f"input does not fit the accelerator's {self.spec.input.datatype}: {e}") from None

    def unpack_output(self, data: bytes, n: int) -> np.ndarray:
        """Accelerator outputs (after the host ops that follow it) from DMA bytes."""
        out = self.spec.output
        try:
            folded = unpack(data, out.datatype, (n, *out.folded_shape[1:]))
        except ValueError as e:
            raise DriverError(f"accelerator output: {e}") from None
        return self._apply(self._post, folded.reshape(n, *out.shape[1:]), "after")

    def _apply(self, ops, x: np.ndarray, where: str) -> np.ndarray:
        # Shapes and permutations come from the package; one that does not fit the tensor
        # is a broken package, not a driver bug.
        for name, fn in ops:
            try:
                x = fn(x)
            except ValueError as e:
                raise DriverError(f"{self.spec.path}: the host op {name} {where} the accelerator does not "
                                  f"fit a tensor of shape {list(x.shape)} ({e})") from None
        return x

    def run(self, x: np.ndarray) -> np.ndarray:
        """The accelerator's integer outputs for float network inputs (NCHW), one batch."""
        data = self.pack_input(self.to_accelerator(x))
        return self.unpack_output(self.accelerator.execute(data, len(x)), len(x))

    def logits(self, acc: np.ndarray) -> np.ndarray:
        """The host head (per-class affine) applied to integer outputs."""
        return apply_head(np.asarray(acc).reshape(len(acc), -1), self.spec.head)

    def predictions(self, logits: np.ndarray) -> list[Prediction]:
        """Top-1 index, class name and softmax score per row of logits."""
        if self.outputs_labels:  # the network's own TopK / ArgMax already chose the class
            idx, score = np.asarray(logits).reshape(len(logits), -1)[:, 0].astype(int), np.full(len(logits), np.nan)
        else:
            idx, score = top1(logits), _softmax_max(logits)
        names = self.spec.class_names
        return [Prediction(int(i), names[i] if i < len(names) else str(int(i)), float(s)) for i, s in zip(idx, score)]

    # --- whole pipeline -----------------------------------------------------------------

    def check_batch(self, batch: int) -> None:
        """Refuse a batch size below 1 or one whose frames together exceed the per-call element limit."""
        if batch < 1:
            raise DriverError("--batch must be at least 1")
        frame = max(int(np.prod(s)) for s in (self.spec.host_shape, self.spec.input.shape, self.spec.output.shape))
        if batch * frame > MAX_BATCH_ELEMENTS:
            raise DriverError(f"--batch {batch}: {batch} frames of {frame:,} elements are more than the driver "
                              f"allocates for one call ({MAX_BATCH_ELEMENTS:,}); use at most "
                              f"--batch {max(1, MAX_BATCH_ELEMENTS // frame)}")

    def classify(self, images: np.ndarray | Sequence[np.ndarray], batch: int = 1) -> list[Prediction]:
        """Top-1 predictions for raw uint8 images, ``batch`` frames per accelerator call."""
        self.check_batch(batch)
        out: list[Prediction] = []
        for start in range(0, len(images), batch):
            x = self.preprocess(images[start:start + batch]).astype(np.float32)
            out += self.predictions(self.logits(self.run(x)))
        return out

    def benchmark(self, n: int = 100, batch: int = 1, seed: int = 0) -> dict:
        """Images/s and latency of the accelerator, the host's share per image, and both together.

        The accelerator runs ``n // batch`` calls on random inputs; the host stages
        (preprocess, quantize, pack; unpack, head, top-1) are timed on as many batches.
        """
        if n < 1 or batch < 1:
            raise DriverError("--n and --batch must be at least 1")
        self.check_batch(batch)
        rng = np.random.default_rng(seed)
        dt = datatype(self.spec.input.datatype)
        codes = rng.integers(dt.min, dt.max + 1, size=(batch, *self.spec.input.shape[1:]))
        if dt.name == "BIPOLAR":
            codes = np.where(codes == 0, 1, codes)
        data = self.pack_input(codes)
        reps = max(1, n // batch)
        out = self.accelerator.execute(data, batch)  # the first call allocates buffers
        t0 = time.perf_counter()
        for _ in range(reps):
            self.accelerator.execute(data, batch)
        accel = time.perf_counter() - t0
        frames = reps * batch
        res = {"batch": batch, "frames": frames, "accelerator_images_per_s": frames / accel,
               "accelerator_latency_ms": 1e3 * accel / reps}
        if self.preprocessing is not None:
            h, w = self.preprocessing.size
            images = rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
            t0 = time.perf_counter()
            for _ in range(reps):
                self.pack_input(self.to_accelerator(self.preprocess(images).astype(np.float32)))
                self.predictions(self.logits(self.unpack_output(out, batch)))
            host = time.perf_counter() - t0
            res.update({"host_ms_per_image": 1e3 * host / frames, "images_per_s": frames / (accel + host),
                        "latency_ms": 1e3 * (accel + host) / reps})
        return res
