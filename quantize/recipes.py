"""Each paper's training recipe as data, so one training loop serves every model.

A :class:`Recipe` says how the paper trained a model (optimizer, learning-rate
schedule, epochs, batch size, loss, augmentation); ``quantize.train`` reads it
and nothing else. Models point at their recipe by name through
``ModelSpec.recipe``.

Papers that train in several stages (e.g. real-valued first, then binary from the
first stage's best weights) list them as :class:`TrainingStage` entries in
``Recipe.stages``; each stage may override the epochs, learning rate and weight
decay, and :meth:`Recipe.for_stage` gives the flat recipe one stage trains with.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

OPTIMIZERS = ("adam",)
LOSSES = ("squared_hinge", "cross_entropy")
#: Augmentation keys: rotation in degrees, zoom and shift as fractions of the image size,
#: hflip a probability, crop the zero padding (pixels) of a random crop back to full size.
AUGMENTATIONS = ("rotation", "zoom", "shift", "hflip", "crop")
#: "exponential": lr_final sets the decay (None = constant, or ReduceLROnPlateau with
#: plateau_factor); "linear": lr(e) = lr * (1 - e / epochs), ReActNet's LambdaLR.
LR_SCHEDULES = ("exponential", "linear")
# Stage names become file names (best-<stage>.pt) and log words.
_STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TrainingStage:
    """One stage of a multi-stage recipe: its name and what it changes (None = the recipe's value).

    Before the stage trains, the model's ``set_training_stage(name)`` hook switches it
    (e.g. from real-valued to binary activations).
    """

    name: str
    epochs: int | None = None
    lr: float | None = None  # base rate; group_lr groups keep their own rates
    weight_decay: float | None = None

    def __post_init__(self) -> None:
        problems = _stage_problems(self)
        if problems:
            raise ValueError(f"training stage {self.name!r}: " + "; ".join(problems))

    def overrides(self) -> dict:
        """The recipe fields this stage sets."""
        return {k: v for k, v in (("epochs", self.epochs), ("lr", self.lr), ("weight_decay", self.weight_decay))
                if v is not None}


@dataclass(frozen=True)
class Recipe:
    """One paper's training hyper-parameters (validated on construction)."""

    name: str
    optimizer: str
    lr: float
    # Exponential per-epoch decay lr(e) = lr * (lr_final / lr) ** (e / epochs); None = constant.
    lr_final: float | None
    # With stages: the epochs of every stage that does not set its own.
    epochs: int
    batch_size: int
    loss: str
    weight_decay: float = 0.0
    val_fraction: float = 0.1  # part of the training set held out to pick the best checkpoint
    seed: int = 37
    augment: dict = field(default_factory=dict)  # e.g. {"rotation": 15, "zoom": 0.2, "shift": 0.1}
    # Own base rates of named optimizer groups a model provides through its optional
    # ``param_groups(recipe)`` hook (e.g. {"alpha": 0.01}); unnamed groups use ``lr``.
    group_lr: dict = field(default_factory=dict)
    # ReduceLROnPlateau on the training loss: every group's rate times ``plateau_factor``
    # after ``plateau_patience`` epochs without improvement, not below ``min_lr``.
    # None = off; it replaces the exponential decay, so lr_final must then be None.
    plateau_factor: float | None = None
    plateau_patience: int = 5
    min_lr: float = 0.0
    # Early stopping: stop when the training loss has not improved by more than
    # ``early_stop_delta`` for ``early_stop_patience`` epochs; None = off.
    early_stop_patience: int | None = None
    early_stop_delta: float = 0.0
    # Cross entropy against (1 - s) * one_hot + s / classes (torch's label_smoothing).
    label_smoothing: float = 0.0
    # See LR_SCHEDULES; "linear" needs lr_final and plateau_factor None.
    lr_schedule: str = "exponential"
    # Trained in order, each with a fresh optimizer and schedule, from the previous
    # stage's best checkpoint; () = one plain run.
    stages: tuple[TrainingStage, ...] = ()

    def __post_init__(self) -> None:
        # Private copies, so nobody can change a shared recipe through its dicts.
        object.__setattr__(self, "augment", dict(self.augment))
        object.__setattr__(self, "group_lr", dict(self.group_lr))
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        problems = _problems(self)
        if problems:
            raise ValueError(f"recipe {self.name!r}: " + "; ".join(problems))

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed, validated like a new recipe."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            valid = ", ".join(f.name for f in dataclasses.fields(self))
            raise ValueError(f"unknown recipe field(s) {', '.join(unknown)}; valid fields: {valid}")
        return dataclasses.replace(self, **changes)

    def lr_at(self, epoch: int, base: float | None = None) -> float:
        """Learning rate of 0-based ``epoch`` (the schedule follows the total ``epochs``).

        ``base`` is a group's own starting rate (default ``lr``); the decay is the same ratio.
        With ``lr_schedule="linear"`` it is ``base * (1 - epoch / epochs)``: the first epoch
        trains at ``base``, the last one (``epoch = epochs - 1``) at ``base / epochs``.
        """
        base = self.lr if base is None else base
        if self.lr_schedule == "linear":
            return base * (1.0 - epoch / self.epochs)
        if self.lr_final is None:
            return base
        return base * (self.lr_final / self.lr) ** (epoch / self.epochs)

    def stage_names(self) -> tuple[str, ...]:
        """Names of the stages in training order (empty without stages)."""
        return tuple(st.name for st in self.stages)

    def for_stage(self, stage: TrainingStage | str) -> "Recipe":
        """The flat recipe (no stages) one stage trains with: this recipe plus the stage's overrides."""
        if isinstance(stage, str):
            named = {st.name: st for st in self.stages}
            if stage not in named:
                raise ValueError(f"recipe {self.name!r} has no stage {stage!r} "
                                 f"(stages: {', '.join(named) or 'none'})")
            stage = named[stage]
        return dataclasses.replace(self, stages=(), **stage.overrides())


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _problems(r: Recipe) -> list[str]:
    out = []
    if r.optimizer not in OPTIMIZERS:
        out.append(f"unknown optimizer {r.optimizer!r} (valid: {', '.join(OPTIMIZERS)})")
    if r.loss not in LOSSES:
        out.append(f"unknown loss {r.loss!r} (valid: {', '.join(LOSSES)})")
    if not (_is_number(r.lr) and r.lr > 0):
        out.append(f"lr must be a positive number, got {r.lr!r}")
    if r.lr_final is not None and not (_is_number(r.lr_final) and r.lr_final > 0):
        out.append(f"lr_final must be a positive number or None, got {r.lr_final!r}")
    for name in ("epochs", "batch_size"):
        v = getattr(r, name)
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            out.append(f"{name} must be a positive int, got {v!r}")
    if not (_is_number(r.weight_decay) and r.weight_decay >= 0):
        out.append(f"weight_decay must be >= 0, got {r.weight_decay!r}")
    if not (_is_number(r.val_fraction) and 0 <= r.val_fraction < 1):
        out.append(f"val_fraction must be in [0, 1), got {r.val_fraction!r}")
    if not (isinstance(r.seed, int) and not isinstance(r.seed, bool) and r.seed >= 0):
        out.append(f"seed must be a non-negative int, got {r.seed!r}")
    for key, v in r.augment.items():
        if key not in AUGMENTATIONS:
            out.append(f"unknown augmentation {key!r} (valid: {', '.join(AUGMENTATIONS)})")
        elif not (_is_number(v) and v >= 0):
            out.append(f"augmentation {key} must be a number >= 0, got {v!r}")
        elif key == "hflip" and v > 1:
            out.append(f"augmentation hflip is a probability, got {v!r}")
        elif key == "crop" and v != int(v):
            out.append(f"augmentation crop is a padding in whole pixels, got {v!r}")
    for key, v in r.group_lr.items():
        if not (isinstance(key, str) and _is_number(v) and v > 0):
            out.append(f"group_lr {key!r} must be a positive number, got {v!r}")
    if not (_is_number(r.label_smoothing) and 0 <= r.label_smoothing < 1):
        out.append(f"label_smoothing must be in [0, 1), got {r.label_smoothing!r}")
    elif r.label_smoothing and r.loss != "cross_entropy":
        out.append(f"label_smoothing applies to the cross_entropy loss only, not {r.loss!r}")
    out += _schedule_problems(r)
    out += _stages_problems(r)
    return out


def _stage_problems(st: TrainingStage) -> list[str]:
    out = []
    if not (isinstance(st.name, str) and _STAGE_NAME.match(st.name)):
        out.append(f"name must be letters, digits, '_', '.' or '-' (a file name), got {st.name!r}")
    if st.epochs is not None and not (_is_count(st.epochs) and st.epochs > 0):
        out.append(f"epochs must be a positive int or None, got {st.epochs!r}")
    if st.lr is not None and not (_is_number(st.lr) and st.lr > 0):
        out.append(f"lr must be a positive number or None, got {st.lr!r}")
    if st.weight_decay is not None and not (_is_number(st.weight_decay) and st.weight_decay >= 0):
        out.append(f"weight_decay must be >= 0 or None, got {st.weight_decay!r}")
    return out


def _stages_problems(r: Recipe) -> list[str]:
    if not isinstance(r.stages, tuple) or not all(isinstance(st, TrainingStage) for st in r.stages):
        return [f"stages must be a tuple of TrainingStage, got {r.stages!r}"]
    names = [st.name for st in r.stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    return [f"stage names must be unique, got {', '.join(dupes)} twice"] if dupes else []


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _schedule_problems(r: Recipe) -> list[str]:
    out = []
    if r.lr_schedule not in LR_SCHEDULES:
        out.append(f"unknown lr_schedule {r.lr_schedule!r} (valid: {', '.join(LR_SCHEDULES)})")
    elif r.lr_schedule == "linear" and (r.lr_final is not None or r.plateau_factor is not None):
        out.append(f"lr_schedule 'linear' decays to 0 over the epochs by itself, so lr_final and "
                   f"plateau_factor must be None (got lr_final={r.lr_final!r}, "
                   f"plateau_factor={r.plateau_factor!r})")
    if r.plateau_factor is not None:
        if not (_is_number(r.plateau_factor) and 0 < r.plateau_factor < 1):
            out.append(f"plateau_factor must be in (0, 1) or None, got {r.plateau_factor!r}")
        if r.lr_final is not None:
            out.append("give lr_final (exponential decay) or plateau_factor (ReduceLROnPlateau), not both")
    if not _is_count(r.plateau_patience):
        out.append(f"plateau_patience must be an int >= 0, got {r.plateau_patience!r}")
    if not (_is_number(r.min_lr) and r.min_lr >= 0):
        out.append(f"min_lr must be >= 0, got {r.min_lr!r}")
    if r.early_stop_patience is not None and not (_is_count(r.early_stop_patience) and r.early_stop_patience > 0):
        out.append(f"early_stop_patience must be a positive int or None, got {r.early_stop_patience!r}")
    if not (_is_number(r.early_stop_delta) and r.early_stop_delta >= 0):
        out.append(f"early_stop_delta must be >= 0, got {r.early_stop_delta!r}")
    return out


# CBCNN (seed paper 002) and the authors' code: Adam with the learning rate decayed
# exponentially per epoch from 1e-3 to 1e-4, squared hinge loss on +-1 targets,
# 10 % of the training set for validation.
_CBCNN_GTSRB = Recipe(
    name="cbcnn-gtsrb",
    optimizer="adam",
    lr=1e-3,
    lr_final=1e-4,
    epochs=1000,
    batch_size=200,
    loss="squared_hinge",
    val_fraction=0.1,
    seed=37,
    augment={"rotation": 15, "zoom": 0.2, "shift": 0.1},
)
# MNIST: same optimizer and loss, shorter, smaller batches, no augmentation.
_CBCNN_MNIST = _CBCNN_GTSRB.replace(name="cbcnn-mnist", epochs=500, batch_size=50, augment={})

RECIPES: dict[str, Recipe] = {r.name: r for r in (_CBCNN_GTSRB, _CBCNN_MNIST)}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe (model files register their paper's recipe next to the model)."""
    if recipe.name in RECIPES and RECIPES[recipe.name] != recipe:
        raise ValueError(f"recipe {recipe.name!r} registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; unknown names list the valid ones."""
    from bnn2fpga.quantize.registry import model_names

    model_names()  # importing the model files registers their recipes
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def squared_hinge(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over batch and classes of max(0, 1 - t * y)^2, t = +1 for the true class, else -1."""
    targets = 2.0 * F.one_hot(labels, logits.shape[1]).to(logits.dtype) - 1.0
    return torch.clamp(1.0 - targets * logits, min=0.0).pow(2).mean()


def make_loss(name: str, label_smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function ``(logits, integer labels) -> scalar`` of a recipe's ``loss`` name.

    ``label_smoothing`` is torch's (``F.cross_entropy(..., label_smoothing=s)``); only
    cross entropy takes it.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    if not (_is_number(label_smoothing) and 0 <= label_smoothing < 1):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if label_smoothing and name != "cross_entropy":
        raise ValueError(f"label_smoothing applies to the cross_entropy loss only, not {name!r}")
    if name == "squared_hinge":
        return squared_hinge
    if label_smoothing:
        return functools.partial(F.cross_entropy, label_smoothing=float(label_smoothing))
    return F.cross_entropy


class EarlyStopping:
    """Stops a run when the monitored loss has not improved by more than ``delta`` for ``patience`` epochs.

    An epoch improves when its loss is below the best so far minus ``delta`` (Keras'
    ``EarlyStopping(min_delta=delta, patience=patience)`` in "min" mode).
    """

    def __init__(self, patience: int, delta: float = 0.0):
        self.patience = patience
        self.delta = delta
        self.best = math.inf
        self.bad_epochs = 0
        self.stopped = False

    def update(self, loss: float) -> bool:
        """Record one epoch's loss; True once the run should stop."""
        if loss < self.best - self.delta:
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        self.stopped = self.stopped or self.bad_epochs >= self.patience
        return self.stopped

    def state_dict(self) -> dict:
        """Plain numbers, for the checkpoint."""
        return {"best": self.best, "bad_epochs": self.bad_epochs, "stopped": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`."""
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
        self.stopped = bool(state["stopped"])
