"""Registry entries of the model zoo (one ``register`` call per model)."""
from __future__ import annotations

from quantize.data.gtsrb import GTSRB_CLASS_NAMES
from quantize.data.idx import MNIST_CLASS_NAMES
from quantize.models.cbcnn import CBCNN, CBCNNConfig
from quantize.preprocess import Preprocessing
from quantize.registry import ModelSpec, register

# GTSRB: the paper's Y channel + histogram equalization at 32x32.
_GTSRB_PRE = Preprocessing(size=(32, 32), luma=True, equalize=True)
# MNIST-style sets are already gray and high-contrast; the paper only standardizes them.
_MNIST_PRE = Preprocessing(size=(28, 28), luma=True, equalize=False)

register(
    ModelSpec(
        name="cbcnn-gtsrb",
        factory=lambda: CBCNN(CBCNNConfig(in_shape=(1, 32, 32), num_classes=43)),
        input_shape=(1, 32, 32),
        input_dtype="UINT8",
        class_names=tuple(GTSRB_CLASS_NAMES),
        dataset="gtsrb",
        recipe="cbcnn-gtsrb",
        preprocessing=_GTSRB_PRE,
        description="CBCNN, 4 binary conv blocks, traffic signs (GTSRB, 43 classes)",
        aliases=("cbcnn",),
    )
)

register(
    ModelSpec(
        name="cbcnn-mnist",
        factory=lambda: CBCNN(
            CBCNNConfig(in_shape=(1, 28, 28), num_classes=10, pixel_mean=33.3, pixel_std=78.6)
        ),
        input_shape=(1, 28, 28),
        input_dtype="UINT8",
        class_names=tuple(MNIST_CLASS_NAMES),
        dataset="mnist",
        datasets=("fashion-mnist", "digits"),
        recipe="cbcnn-mnist",
        preprocessing=_MNIST_PRE,
        description="CBCNN, 4 binary conv blocks, 28x28 digits (MNIST, Fashion-MNIST, sklearn digits)",
    )
)

register(
    ModelSpec(
        name="cbcnn-dcr",
        factory=lambda: CBCNN(CBCNNConfig(in_shape=(1, 32, 32), num_classes=43, conv_blocks=3)),
        input_shape=(1, 32, 32),
        input_dtype="UINT8",
        class_names=tuple(GTSRB_CLASS_NAMES),
        dataset="gtsrb",
        recipe="cbcnn-gtsrb",
        preprocessing=_GTSRB_PRE,
        description="CBCNN as in the authors' code (3 conv blocks; the paper's earlier DCR model)",
    )
)
