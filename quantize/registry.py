"""The model zoo: one registry, looked up by name like timm's ``create_model``.

A model is added by one file in ``quantize/models/`` that calls ``register`` for each
of its variants; nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from bnn2fpga.errors import UserError
from bnn2fpga.quantize.preprocess import Preprocessing


class UnknownModelError(UserError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """Everything the flow and the board need to know about a registered model."""

    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]  # C, H, W
    input_dtype: str  # FINN DataType name of the accelerator input
    class_names: tuple[str, ...]
    dataset: str  # default dataset for `bnn2fpga train`
    recipe: str  # key into quantize.recipes.RECIPES
    preprocessing: Preprocessing
    description: str
    datasets: tuple[str, ...] = ()  # other datasets the same shape fits
    aliases: tuple[str, ...] = field(default=())
    # Paper-faithful variants with float parts train and compare accuracy but cannot
    # become hardware; builds of them stop at once and point to the deployable variant.
    deployable: bool = True
    deployable_variant: str | None = None

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the zoo (names and aliases must be unique)."""
    for key in (spec.name, *spec.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"model name {key!r} registered twice")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def model_names() -> list[str]:
    """Registered model names (without aliases), sorted."""
    _load_zoo()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model or alias; unknown names list the valid ones."""
    _load_zoo()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        valid = ", ".join(model_names() + sorted(_ALIASES))
        raise UnknownModelError(f"unknown model '{name}'; valid models: {valid}")
    return _REGISTRY[key]


def create_model(name: str) -> nn.Module:
    """A freshly initialised instance of a registered model."""
    return get_spec(name).factory()


def count_trainable(model: nn.Module) -> int:
    """Trainable parameters (weights and BN gamma/beta), as the papers count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_binary_weight_bits(model: nn.Module) -> int:
    """Number of 1-bit weights (one bit each) in the model's binary layers.

    Brevitas layers with 1-bit weights are found by themselves; a model whose binary
    layers are its own (sign(W) in plain PyTorch, as the faithful paper models) says how
    many through a ``binary_weight_bits()`` method.
    """
    own = getattr(model, "binary_weight_bits", None)
    if callable(own):
        return int(own())
    return count_brevitas_binary_bits(model)


def count_brevitas_binary_bits(model: nn.Module) -> int:
    """Weights of the model's Brevitas conv / linear layers whose weight quantizer is 1-bit."""
    from brevitas.nn import QuantConv2d, QuantLinear

    bits = 0
    for m in model.modules():
        if isinstance(m, (QuantConv2d, QuantLinear)) and m.weight_quant.is_quant_enabled:
            if int(m.quant_weight().bit_width) == 1:
                bits += m.weight.numel()
    return bits


_loaded = False


def _load_zoo() -> None:
    # Every module in quantize/models registers its own models when imported (as timm's
    # model files do); importing lazily keeps `import quantize.registry` cheap and cycle-free.
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib
        import pkgutil

        from bnn2fpga.quantize import models

        for mod in sorted(m.name for m in pkgutil.iter_modules(models.__path__)):
            importlib.import_module(f"bnn2fpga.quantize.models.{mod}")
