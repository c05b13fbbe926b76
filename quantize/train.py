"""One training loop for every model in the zoo, driven by the model's recipe.

``train(TrainConfig(model="cbcnn-mnist"))`` loads the model's dataset, runs the
accelerator's preprocessing (so the network trains on exactly the uint8 pixels
the board will see), holds out part of the training set for validation and
trains with the recipe's optimizer, schedule, loss and augmentation.

Runs are reproducible and restartable: every random draw comes from the recipe's
seed, every epoch writes ``last.pt`` (and ``best.pt`` when validation improves)
atomically, and a run started on a directory that holds ``last.pt`` continues
after its last finished epoch with the same result as an uninterrupted run.

Models may provide two hooks: ``param_groups(recipe)`` (optimizer groups, e.g. a group
of scales with its own rate from ``recipe.group_lr``) and ``constrain()`` (projections
after every optimizer step). The recipe's ReduceLROnPlateau and early stopping, both on
the training loss, are checkpointed with the weights, so a resumed run continues them.

A recipe with ``stages`` trains them in order. Each stage starts from the previous
stage's best checkpoint (``best-<stage>.pt``, by validation accuracy), then the model's
third hook, ``set_training_stage(name)``, switches it to the stage, and the stage gets a
fresh optimizer and schedule from ``recipe.for_stage(stage)`` (which is also what
``param_groups`` receives). Checkpoints record the stage, so a resumed run continues in
it and :func:`load_checkpoint` rebuilds the model in it; ``best.pt`` is the best of the
stage in progress, so after the run it is the last stage's best.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from bnn2fpga.errors import UserError
from bnn2fpga.quantize import distributed
from bnn2fpga.quantize.data import DatasetError, load_dataset, stratified_split
from bnn2fpga.quantize.recipes import EarlyStopping, Recipe, TrainingStage, get_recipe, make_loss
from bnn2fpga.quantize.registry import ModelSpec, UnknownModelError, get_spec

logger = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "TrainConfigError",
    "train",
    "train_step",
    "evaluate",
    "augment",
    "load_checkpoint",
]

CHECKPOINT_FORMAT = 1
_METRIC_FIELDS = ("epoch", "lr", "loss", "train_acc", "val_acc", "images", "seconds", "images_per_s")
# Only staged runs write this column (first), so single-stage metrics files keep their layout.
_STAGE_FIELD = "stage"
STAGE_HOOK = "set_training_stage"


class CheckpointError(UserError):
    """A checkpoint file is missing, unreadable or belongs to another model (one-line message)."""


class TrainConfigError(UserError, ValueError):
    """A training setting is out of range, or the dataset does not fit the model (one-line message)."""


@dataclass
class TrainConfig:
    """What to train and where; ``epochs``, ``batch_size`` and ``lr`` override the recipe.

    With training stages ``epochs`` is every stage's count and ``lr`` scales every stage's rate.
    """

    model: str
    dataset: str | None = None  # None: the model's default dataset
    data_root: Path | None = None
    out_dir: Path | None = None  # None: build/train/<model>
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # the decay keeps the recipe's lr_final / lr ratio
    limit: int | None = None  # at most this many training images (smoke tests)
    threads: int | None = None
    progress: bool = True
    nproc: int | None = None  # data-parallel processes on this machine (None/1: one)

    def __post_init__(self) -> None:
        self.out_dir = Path("build/train") / self.model if self.out_dir is None else Path(self.out_dir)
        if self.data_root is not None:
            self.data_root = Path(self.data_root)
        self.check()

    def check(self) -> None:
        """Raise TrainConfigError naming the first setting that makes no sense (None means the recipe's)."""
        for name in ("epochs", "batch_size", "limit", "threads", "nproc"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool):
                raise TrainConfigError(f"{_flag(name)} must be a whole number, got {v!r}")
            if v < 1:
                raise TrainConfigError(f"{_flag(name)} must be >= 1, got {v}")
        if self.lr is not None:
            # nan compares False with everything, so it is tested for explicitly.
            ok = isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool)
            if not ok or not math.isfinite(self.lr) or self.lr <= 0:
                raise TrainConfigError(f"{_flag('lr')} must be a finite number > 0, got {self.lr!r}")


def _flag(name: str) -> str:
    # Messages name the CLI option the user typed; threads has none.
    return name if name == "threads" else "--" + name.replace("_", "-")


@dataclass
class TrainResult:
    """Where a run left its files and how well the best checkpoint did."""

    checkpoint: Path  # best.pt (best validation accuracy)
    last: Path
    best_val_acc: float  # fraction; nan without a validation split
    test_acc: float | None  # of the best checkpoint; None when the dataset has no test split
    epochs_run: int  # epochs trained by this call (a resumed run skips finished ones)
    images_per_s: float  # training throughput over the whole run
    metrics_csv: Path
    curve_png: Path
    stage: str | None = None  # training stage of the best checkpoint; None without stages


@dataclass
class _Data:
    x_train: torch.Tensor  # uint8 NCHW
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    class_names: list[str]


# --------------------------------------------------------------------------- public API


#: Marks a folder as a training run's own, so a rerun may write into it and nothing else is touched.
TRAIN_MARKER = ".bnn2fpga-train"


def claim_out_dir(out: Path) -> None:
    """Create (or accept) the training output folder; a file or a foreign non-empty folder is refused.

    Runs made before the marker existed are recognised by their own files (last.pt, metrics.csv).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TrainConfigError(f"--out {out} is a file, not a folder")
    ours = (out / TRAIN_MARKER).is_file() or (out / "last.pt").is_file() or (out / "metrics.csv").is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise TrainConfigError(f"--out {out} is a folder that was not made by 'bnn2fpga train' and is not empty; "
                               "refusing to write into it (give a new or empty folder)")
    out.mkdir(parents=True, exist_ok=True)
    (out / TRAIN_MARKER).touch()


def train(cfg: TrainConfig, log: Callable[[str], Any] | None = None) -> TrainResult:
    """Train ``cfg.model`` by its recipe, resuming from ``out_dir/last.pt`` if present.

    Settings out of range and a dataset whose classes or image size do not fit the
    model raise :class:`TrainConfigError` before anything is trained.
    """
    log = log or logger.info
    cfg.check()  # again: the fields may have been changed since construction
    joined = distributed.from_env()  # under torchrun: one of its processes
    if not joined and (cfg.nproc or 1) > 1 and distributed.current().size == 1:
        get_spec(cfg.model)  # a bad name fails here, once, not in every process
        claim_out_dir(cfg.out_dir)
        return distributed.spawn(train, cfg.nproc, replace(cfg, nproc=None))
    world = distributed.current()
    if not world.is_main:
        log = _silent
    spec = get_spec(cfg.model)
    recipe = _recipe_for(spec, cfg)
    dataset = cfg.dataset or spec.dataset
    if recipe.batch_size < 2 * world.size:
        raise TrainConfigError(f"--batch-size {recipe.batch_size} is too small for {world.size} processes "
                               f"(each needs at least 2 images per batch for BatchNorm)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if world.is_main:
        claim_out_dir(cfg.out_dir)
    distributed.barrier()
    data = _load_data(spec, dataset, cfg.data_root, recipe, cfg.limit, log)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # The caller's global RNG is left as it was; the run seeds its own copy.
        with torch.random.fork_rng(devices=[]):
            return _run(cfg, spec, recipe, dataset, data, log)
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _silent(msg: str) -> None:
    """The log of ranks other than 0: one voice per run."""


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    forward: nn.Module | None = None,
) -> tuple[float, int]:
    """One optimizer step followed by the model's ``constrain()``; returns (loss, correct).

    ``forward`` is the module that computes the logits when it is not ``model`` itself
    (a DistributedDataParallel wrapper, which averages the gradients across processes).
    """
    logits = (forward or model)(images)
    loss = loss_fn(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    constrain = getattr(model, "constrain", None)
    if callable(constrain):
        constrain()  # the BNN papers project latent weights and BN scales after every step
    return float(loss.detach()), int((logits.detach().argmax(1) == labels).sum())


def evaluate(model: nn.Module, images_u8: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy (fraction) of ``model`` on uint8 NCHW images, in eval mode without gradients."""
    x = torch.as_tensor(np.asarray(images_u8) if not torch.is_tensor(images_u8) else images_u8)
    y = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                logits = model(x[i : i + batch_size].float())
                correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(y)


def augment(
    images: torch.Tensor,
    rotation: float = 0.0,
    zoom: float = 0.0,
    shift: float = 0.0,
    generator: torch.Generator | None = None,
    hflip: float = 0.0,
    crop: int = 0,
) -> torch.Tensor:
    """Random affine jitter of a float NCHW batch of integer pixels; the result stays integer 0..255.

    Per image: rotation uniform in +-``rotation`` degrees, horizontal and vertical
    zoom each uniform in 1 +- ``zoom``, shift uniform in +- ``shift`` of the size.
    Pixels outside the image repeat the border, as Keras' ImageDataGenerator does.
    Before that (torchvision's order): a horizontal flip with probability ``hflip``
    and a random full-size crop of the image zero-padded by ``crop`` pixels.
    """
    images = _flip_and_crop(images, hflip, int(crop), generator)
    if not (rotation or zoom or shift):
        return images
    n, c, h, w = images.shape

    def uniform() -> torch.Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1

    angle = torch.deg2rad(uniform() * rotation)
    zx, zy = 1 + uniform() * zoom, 1 + uniform() * zoom
    tx, ty = uniform() * 2 * shift, uniform() * 2 * shift  # normalized coordinates span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Rotate in pixel space: the h/w factors keep non-square images from shearing.
    theta = torch.stack(
        [
            torch.stack([cos * zx, -sin * zy * h / w, tx], dim=1),
            torch.stack([sin * zx * w / h, cos * zy, ty], dim=1),
        ],
        dim=1,
    ).to(images.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # The accelerator only ever sees integer pixels, so training must too.
    return torch.round(out).clamp_(0, 255)


def _flip_and_crop(images: torch.Tensor, hflip: float, crop: int, generator) -> torch.Tensor:
    # Draws nothing when both are off, so recipes without them see the same random stream.
    n, c, h, w = images.shape
    if hflip:
        flip = torch.rand(n, generator=generator) < hflip
        images = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
    if crop:
        padded = F.pad(images, (crop,) * 4)  # zeros, as torchvision's RandomCrop(padding=crop)
        dy = torch.randint(0, 2 * crop + 1, (n, 1), generator=generator)
        dx = torch.randint(0, 2 * crop + 1, (n, 1), generator=generator)
        rows = (dy + torch.arange(h)).view(n, 1, h, 1).expand(n, c, h, w)
        cols = (dx + torch.arange(w)).view(n, 1, 1, w).expand(n, c, h, w)
        images = padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]
    return images


def load_checkpoint(path: str | Path, model: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the checkpoint's model from the registry (eval mode) and return it with the checkpoint.

    With ``model`` given, a checkpoint of any other model is a :class:`CheckpointError`.
    A checkpoint saved in a training stage calls the model's ``set_training_stage(stage)``
    before loading the weights, so the model (and its export) is in that stage.
    """
    path = Path(path)
    ckpt = _read_checkpoint(path)
    name = ckpt["model"]
    if model is not None:
        _check_same_model(path, name, model)
    try:
        spec = get_spec(name)
    except UnknownModelError:
        raise CheckpointError(f"{path}: checkpoint of unknown model {name!r}") from None
    with torch.random.fork_rng(devices=[]):  # building the model must not disturb the caller's RNG
        net = spec.factory()
        stage = ckpt.get("stage")
        if stage is not None:
            # The stage decides what the weights mean (e.g. binary activations), so the
            # model is switched before they are loaded and stays in it for export.
            _enter_stage(net, stage, CheckpointError, f"{path}: checkpoint of training stage {stage!r}, but ")
    _restore(net, ckpt["state_dict"], path, f"model {name!r}")
    net.eval()
    return net, ckpt


# --------------------------------------------------------------------------- data


def _recipe_for(spec: ModelSpec, cfg: TrainConfig) -> Recipe:
    recipe = get_recipe(spec.recipe)
    changes: dict[str, Any] = {}
    stages = list(recipe.stages)
    if cfg.epochs is not None:
        changes["epochs"] = cfg.epochs
        stages = [dataclasses.replace(st, epochs=None) for st in stages]
    if cfg.batch_size is not None:
        changes["batch_size"] = cfg.batch_size
    if cfg.lr is not None:
        scale = cfg.lr / recipe.lr
        changes["lr"] = cfg.lr
        if recipe.lr_final is not None:
            changes["lr_final"] = recipe.lr_final * scale
        stages = [st if st.lr is None else dataclasses.replace(st, lr=st.lr * scale) for st in stages]
    if stages != list(recipe.stages):
        changes["stages"] = tuple(stages)
    return recipe.replace(**changes) if changes else recipe


def _load_split(
    spec: ModelSpec, dataset: str, root: Path | None, split: str, limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ds = load_dataset(dataset, root, split)
    # Checked before preprocessing (which can take a while) and before any training: a
    # label past the model's outputs would otherwise fail deep inside the loss.
    if len(ds.class_names) != spec.num_classes:
        raise TrainConfigError(
            f"dataset {dataset!r} has {len(ds.class_names)} classes but model {spec.name!r} has "
            f"{spec.num_classes}; choose a dataset with {spec.num_classes} classes or another model"
        )
    if len(ds.labels) and (ds.labels.min() < 0 or ds.labels.max() >= spec.num_classes):
        raise TrainConfigError(
            f"dataset {dataset!r} {split} has labels {ds.labels.min()}..{ds.labels.max()} but model "
            f"{spec.name!r} has classes 0..{spec.num_classes - 1}"
        )
    if limit is not None and limit < len(ds):
        # A random subset, because many datasets are stored sorted by class.
        keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
        ds = ds.subset(keep)
    x = spec.preprocessing(ds.images)
    if tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise TrainConfigError(
            f"dataset {dataset!r} {split} images preprocess to {tuple(x.shape[1:])}, "
            f"but model {spec.name!r} expects {tuple(spec.input_shape)}"
        )
    return x, ds.labels, list(ds.class_names)


def _holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction == 0 or len(labels) < 2:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, fraction, seed)
    if len(val_idx) == 0:
        # Too few images per class to stratify (tiny --limit runs): hold out at random.
        n_val = max(1, round(len(labels) * fraction))
        perm = np.random.default_rng(seed).permutation(len(labels))
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return train_idx, val_idx


def _load_data(
    spec: ModelSpec, dataset: str, root: Path | None, recipe: Recipe, limit: int | None, log
) -> _Data:
    x, y, class_names = _load_split(spec, dataset, root, "train", limit, recipe.seed)
    train_idx, val_idx = _holdout(y, recipe.val_fraction, recipe.seed)
    try:
        x_test, y_test, _ = _load_split(spec, dataset, root, "test", None, recipe.seed)
    except DatasetError as e:
        log(f"no test split ({e}); test accuracy is skipped")
        x_test = y_test = None
    t = torch.from_numpy
    return _Data(
        x_train=t(x[train_idx]),
        y_train=t(y[train_idx]),
        x_val=t(x[val_idx]),
        y_val=t(y[val_idx]),
        x_test=None if x_test is None else t(x_test),
        y_test=None if y_test is None else t(y_test),
        class_names=class_names,
    )


# --------------------------------------------------------------------------- training loop


def _make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(_param_groups(recipe, model), lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def _param_groups(recipe: Recipe, model: nn.Module) -> list[dict]:
    """The model's optimizer groups, each at its base rate.

    A model may provide ``param_groups(recipe)``: dicts with "params", an optional "name"
    (whose rate is ``recipe.group_lr[name]``) and optional optimizer options such as
    "weight_decay". Without the hook all parameters form one group at ``recipe.lr``.
    """
    hook = getattr(model, "param_groups", None)
    groups = hook(recipe) if callable(hook) else [{"params": list(model.parameters())}]
    for group in groups:
        group["lr"] = _base_lr(recipe, group)
    return groups


def _base_lr(recipe: Recipe, group: dict) -> float:
    return recipe.group_lr.get(group.get("name"), recipe.lr)


def _set_epoch_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, epoch: int) -> float:
    """Apply the recipe's per-epoch rate to every group; returns the first group's rate."""
    if recipe.plateau_factor is None:  # with ReduceLROnPlateau the scheduler owns the rates
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr_at(epoch, _base_lr(recipe, group))
    return optimizer.param_groups[0]["lr"]


class _Schedule:
    """The recipe's epoch-level state: ReduceLROnPlateau and early stopping, both on the training loss."""

    def __init__(self, recipe: Recipe, optimizer: torch.optim.Optimizer):
        self.plateau = None
        if recipe.plateau_factor is not None:
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=recipe.plateau_factor, patience=recipe.plateau_patience,
                min_lr=recipe.min_lr, eps=0.0,  # min_lr alone bounds the rate (torch skips steps < eps)
            )
        self.stop = None
        if recipe.early_stop_patience is not None:
            self.stop = EarlyStopping(recipe.early_stop_patience, recipe.early_stop_delta)

    @property
    def stopped(self) -> bool:
        """Whether early stopping has ended the run."""
        return self.stop is not None and self.stop.stopped

    def end_epoch(self, loss: float) -> None:
        """Feed one epoch's training loss to both."""
        if self.plateau is not None:
            self.plateau.step(loss)
        if self.stop is not None:
            self.stop.update(loss)

    def state_dict(self) -> dict:
        """Checkpointed with the weights, so a resumed run continues the same schedule."""
        return {
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
            "early_stop": None if self.stop is None else self.stop.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (parts the recipe does not use are ignored)."""
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
        if self.stop is not None and state.get("early_stop") is not None:
            self.stop.load_state_dict(state["early_stop"])


def _epoch_rngs(seed: int, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    # Derived from (seed, epoch) alone, so a resumed run draws exactly what an
    # uninterrupted one would without carrying generator state across processes.
    rng = np.random.default_rng([seed, epoch])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return rng, gen


def _batches(n: int, batch_size: int, rng: np.random.Generator, ranks: int = 1) -> list[torch.Tensor]:
    perm = torch.from_numpy(rng.permutation(n))
    batches = list(perm.split(batch_size))
    # BatchNorm cannot train on a single sample (per process); the rest is seen next epoch.
    if len(batches) > 1 and len(batches[-1]) < 2 * ranks:
        batches.pop()
    return batches


def _train_epoch(
    model, optimizer, loss_fn, data: _Data, recipe: Recipe, epoch: int, progress: bool, desc: str,
    forward: nn.Module | None = None,
) -> dict:
    world = distributed.current()
    rng, gen = _epoch_rngs(recipe.seed, epoch)
    batches = _batches(len(data.y_train), recipe.batch_size, rng, world.size)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(
        batches,
        desc=desc,
        unit="batch",
        leave=False,
        disable=None if progress and world.is_main else True,  # None: only on a terminal
    )
    with distributed.synchronized_batch_norm(model):
        for idx in bar:
            xb = data.x_train[idx].float()
            if any(recipe.augment.values()):
                # The whole global batch, so every rank draws the same random stream as one process would.
                xb = augment(xb, generator=gen, **recipe.augment)
            mine = distributed.shard(torch.arange(len(idx)), world)
            loss, ok = train_step(model, optimizer, loss_fn, xb[mine], data.y_train[idx][mine], forward)
            loss_sum += loss * len(mine)
            correct += ok
            seen += len(mine)
            bar.set_postfix_str(f"loss {loss_sum / seen:.3f}", refresh=False)
    bar.close()
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = distributed.all_sum([loss_sum, float(correct), float(seen)])
    return {"loss": loss_sum / seen, "train_acc": correct / seen, "images": int(seen), "train_seconds": seconds}


@dataclass
class _Progress:
    """Where a run stands: the stage in progress, its best epoch, and the stages behind it."""

    stage_index: int = 0
    stage_epoch: int = 0  # epochs finished in the current stage
    epoch: int = 0  # epochs finished in the whole run (numbers the metrics rows and the RNG draws)
    best_val: float = float("nan")  # of the current stage
    best_epoch: int = 0  # run-wide epoch number of the current stage's best
    stage_results: list = dataclasses.field(default_factory=list)  # one dict per finished stage


def _plan(recipe: Recipe) -> list[tuple[TrainingStage | None, Recipe]]:
    """(stage, the flat recipe it trains with) in order; one (None, recipe) without stages."""
    if not recipe.stages:
        return [(None, recipe)]
    return [(st, recipe.for_stage(st)) for st in recipe.stages]


def _enter_stage(model: nn.Module, name: str, error: type = TypeError, prefix: str = "") -> None:
    hook = getattr(model, STAGE_HOOK, None)
    if not callable(hook):
        raise error(f"{prefix}{type(model).__name__} has no {STAGE_HOOK}(name) method to switch training stages")
    hook(name)


def _run(cfg: TrainConfig, spec: ModelSpec, recipe: Recipe, dataset: str, data: _Data, log) -> TrainResult:
    out = cfg.out_dir
    best_path, last_path, metrics_path = out / "best.pt", out / "last.pt", out / "metrics.csv"
    plan = _plan(recipe)
    staged = bool(recipe.stages)
    torch.manual_seed(recipe.seed)
    model = spec.factory()
    if staged and not callable(getattr(model, STAGE_HOOK, None)):
        raise TypeError(f"model {spec.name!r}: recipe {recipe.name!r} trains in stages "
                        f"({', '.join(recipe.stage_names())}) but {type(model).__name__} has no "
                        f"{STAGE_HOOK}(name) method")
    loss_fn = make_loss(recipe.loss, recipe.label_smoothing)
    main = distributed.current().is_main
    prog, rows, resumed = _Progress(), [], None
    if last_path.exists():
        resumed = _read_resume(last_path, spec.name, dataset, cfg.limit, recipe)
        prog = resumed["progress"]
        rows = [r for r in _read_metrics(metrics_path) if r["epoch"] <= prog.epoch]
        log(_resume_line(last_path, resumed, prog, plan))
    _log_setup(log, spec, dataset, recipe, data)
    epochs_run = 0
    for index in range(prog.stage_index, len(plan)):
        stage, stage_recipe = plan[index]
        name = None if stage is None else stage.name
        if resumed is not None and index == prog.stage_index:
            if staged:
                _enter_stage(model, name)
            _restore(model, resumed["ckpt"]["state_dict"], last_path, f"model {spec.name!r}")
            optimizer = _make_optimizer(stage_recipe, model)
            schedule = _Schedule(stage_recipe, optimizer)
            _restore(optimizer, resumed["ckpt"]["optimizer"], last_path, "the optimizer")
            _restore(schedule, resumed["ckpt"].get("schedule", {}), last_path, "the recipe's schedule")
            torch.set_rng_state(resumed["ckpt"]["rng"]["torch"])
        else:
            if index > 0:
                _start_from_best(model, out, plan[index - 1][0].name, log)
            if staged:
                _enter_stage(model, name)
            optimizer = _make_optimizer(stage_recipe, model)
            schedule = _Schedule(stage_recipe, optimizer)
            prog.stage_index, prog.stage_epoch = index, 0
            prog.best_val, prog.best_epoch = float("nan"), 0
            if staged:
                log(_stage_line(index, len(plan), name, stage_recipe))
        for stage_epoch in range(prog.stage_epoch, stage_recipe.epochs):
            if schedule.stopped:
                break
            lr = _set_epoch_lr(optimizer, stage_recipe, stage_epoch)
            where = f"epoch {stage_epoch + 1}/{stage_recipe.epochs}"
            if staged:
                where = f"stage {index + 1}/{len(plan)} {name}  {where}"
            start = time.perf_counter()
            ddp = _data_parallel(model)
            stats = _train_epoch(model, optimizer, loss_fn, data, stage_recipe, prog.epoch, cfg.progress, where,
                                 **({"forward": ddp} if ddp is not None else {}))
            val_acc = evaluate(model, data.x_val, data.y_val)
            row = {
                "epoch": prog.epoch + 1,
                "lr": lr,
                "loss": stats["loss"],
                "train_acc": stats["train_acc"],
                "val_acc": val_acc,
                "images": stats["images"],
                "seconds": time.perf_counter() - start,
                "images_per_s": stats["images"] / stats["train_seconds"],
            }
            if staged:
                row = {_STAGE_FIELD: name, **row}
            rows.append(row)
            if main:
                _write_metrics(metrics_path, rows)
            prog.epoch, prog.stage_epoch = prog.epoch + 1, stage_epoch + 1
            # Without a validation split the latest epoch counts as the best.
            improved = math.isnan(val_acc) or math.isnan(prog.best_val) or val_acc > prog.best_val
            if improved:
                prog.best_val, prog.best_epoch = val_acc, prog.epoch
            schedule.end_epoch(stats["loss"])
            ckpt = _checkpoint(model, optimizer, spec, recipe, dataset, data, cfg.limit, row, prog, name, schedule)
            if main:  # one writer; every rank holds the same weights after the averaged step
                if improved:
                    if staged:
                        _atomic_save(ckpt, _stage_best_path(out, name))
                    _atomic_save(ckpt, best_path)
                _atomic_save(ckpt, last_path)
            distributed.barrier()
            epochs_run += 1
            log(f"{where}  {_epoch_stats(row)}")
            if schedule.stopped:
                log(f"early stop after {where}: training loss not better by > "
                    f"{stage_recipe.early_stop_delta:g} for {stage_recipe.early_stop_patience} epochs")
        if staged:
            prog.stage_results.append(_stage_result(name, prog))
    if not main:
        return None
    return _finish(out, spec, dataset, recipe, data, rows, prog, epochs_run, log)


def _data_parallel(model: nn.Module) -> nn.Module | None:
    """A DistributedDataParallel view of ``model`` when several processes train it, else None.

    Built per epoch: a new stage may have changed the model's parameters (their set or
    their trainability), and DDP takes its parameter list at construction.
    """
    if distributed.current().size == 1:
        return None
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def _stage_best_path(out: Path, stage: str) -> Path:
    return out / f"best-{stage}.pt"


def _start_from_best(model: nn.Module, out: Path, stage: str, log) -> None:
    """Load the finished stage's best weights into the model, which is still in that stage."""
    path = _stage_best_path(out, stage)
    ckpt = _read_checkpoint(path)
    if ckpt.get("stage") != stage:
        raise CheckpointError(f"{path}: holds stage {ckpt.get('stage')!r}, not {stage!r}")
    _restore(model, ckpt["state_dict"], path, f"model {ckpt['model']!r}")
    log(f"starting from stage {stage}'s best: epoch {ckpt['best_epoch']}, val {_pct(ckpt['best_val_acc'])} "
        f"({path.name})")


def _stage_result(name: str, prog: _Progress) -> dict:
    return {"name": name, "epochs": prog.stage_epoch, "best_epoch": prog.best_epoch, "best_val_acc": prog.best_val}


def _stage_line(index: int, count: int, name: str, r: Recipe) -> str:
    return (f"stage {index + 1}/{count} {name}: {r.epochs} epochs, {r.optimizer} {_schedule_text(r)}, "
            f"weight decay {r.weight_decay:g}, fresh optimizer")


def _resume_line(path: Path, resumed: dict, prog: _Progress, plan) -> str:
    early_stop = (resumed["ckpt"].get("schedule") or {}).get("early_stop") or {}
    stopped = "; it had stopped early" if early_stop.get("stopped") else ""
    stage, stage_recipe = plan[prog.stage_index]
    if stage is None:
        return f"resuming {path}: {prog.stage_epoch} of {stage_recipe.epochs} epochs done{stopped}"
    return (f"resuming {path}: stage {prog.stage_index + 1}/{len(plan)} {stage.name}, "
            f"{prog.stage_epoch} of {stage_recipe.epochs} epochs done{stopped}")


def _finish(out: Path, spec, dataset, recipe, data: _Data, rows, prog: _Progress, epochs_run, log) -> TrainResult:
    """Test the best checkpoint (the last stage's), write the summary and the curves."""
    best_path = out / "best.pt"
    if not best_path.exists():
        raise CheckpointError(f"{best_path}: missing; delete {out / 'last.pt'} to train again from scratch")
    best_model, best_ckpt = load_checkpoint(best_path, model=spec.name)
    test_acc = None if data.x_test is None else evaluate(best_model, data.x_test, data.y_test)
    if best_ckpt.get("test_acc", "unset") != test_acc:
        best_ckpt["test_acc"] = test_acc  # travels with the weights into the export's sidecar
        _atomic_save(best_ckpt, best_path)
    ips = _throughput(rows)
    stage = best_ckpt.get("stage")
    _write_summary(out / "train_summary.json", spec, dataset, recipe, rows, prog, stage, test_acc, ips)
    _plot_curves(rows, out / "curves.png", spec.name)
    test_txt = "no test split" if test_acc is None else f"test {test_acc:.1%}"
    in_stage = "" if stage is None else f" (stage {stage})"
    log(f"best epoch {prog.best_epoch}{in_stage}: val {_pct(prog.best_val)}, {test_txt}  ->  {best_path}")
    return TrainResult(
        checkpoint=best_path,
        last=out / "last.pt",
        best_val_acc=prog.best_val,
        test_acc=test_acc,
        epochs_run=epochs_run,
        images_per_s=ips,
        metrics_csv=out / "metrics.csv",
        curve_png=out / "curves.png",
        stage=stage,
    )


def _schedule_text(recipe: Recipe) -> str:
    if recipe.lr_schedule == "linear":
        sched = f"lr {recipe.lr:g} linear->0"
    else:
        sched = f"lr {recipe.lr:g}" + ("" if recipe.lr_final is None else f"->{recipe.lr_final:g}")
    sched += "".join(f", {name} lr {v:g}" for name, v in recipe.group_lr.items())
    if recipe.plateau_factor is not None:
        sched += f", plateau x{recipe.plateau_factor:g} after {recipe.plateau_patience} (min {recipe.min_lr:g})"
    if recipe.early_stop_patience is not None:
        sched += f", early stop after {recipe.early_stop_patience}"
    return sched


def _log_setup(log, spec: ModelSpec, dataset: str, recipe: Recipe, data: _Data) -> None:
    n_test = "no" if data.y_test is None else f"{len(data.y_test):,}"
    aug = ", augment " + ", ".join(f"{k} {v:g}" for k, v in recipe.augment.items()) if recipe.augment else ""
    loss = recipe.loss + (f" (label smoothing {recipe.label_smoothing:g})" if recipe.label_smoothing else "")
    if recipe.stages:
        length = "stages " + " -> ".join(
            f"{st.name} ({r.epochs} epochs, lr {r.lr:g}, wd {r.weight_decay:g})" for st, r in _plan(recipe)
        )
    else:
        length = f"{recipe.epochs} epochs"
    log(
        f"{spec.name} on {dataset}: {len(data.y_train):,} train, {len(data.y_val):,} val, {n_test} test images; "
        f"{recipe.optimizer} {_schedule_text(recipe)}, {length}, batch {recipe.batch_size}, {loss}{aug}"
    )


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1%}"


def _epoch_stats(row: dict) -> str:
    return (
        f"loss {row['loss']:.3f}  train {_pct(row['train_acc'])}  "
        f"val {_pct(row['val_acc'])}  {row['images_per_s']:,.0f} img/s"
    )


def _throughput(rows: list[dict]) -> float:
    seconds = sum(r["images"] / r["images_per_s"] for r in rows if r["images_per_s"] > 0)
    return sum(r["images"] for r in rows) / seconds if seconds else float("nan")


# --------------------------------------------------------------------------- checkpoints


def _checkpoint(model, optimizer, spec, recipe, dataset, data, limit, row, prog: _Progress, stage, schedule) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": spec.name,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # the stage's own optimizer
        "schedule": schedule.state_dict(),  # ReduceLROnPlateau and early stopping
        "epoch": row["epoch"],  # epochs finished in the whole run
        "stage": stage,  # training stage name, None without stages; load_checkpoint switches to it
        "stage_index": prog.stage_index,
        "stage_epoch": prog.stage_epoch,  # epochs finished in this stage
        "stage_results": [dict(r) for r in prog.stage_results],  # finished stages' best epochs
        "val_acc": row["val_acc"],
        "best_val_acc": prog.best_val,  # of this stage
        "best_epoch": prog.best_epoch,
        "recipe": dataclasses.asdict(recipe),
        "dataset": dataset,
        "limit": limit,
        "class_names": list(data.class_names),
        "preprocessing": spec.preprocessing.to_dict(),
        # Batch order and augmentation are drawn from (seed, epoch); the global torch
        # state covers anything else a model may draw (dropout, say).
        "rng": {"seed": recipe.seed, "torch": torch.get_rng_state()},
    }


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash leaves either the old file or the new one, never half of one


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        # weights_only: a checkpoint is data, so a downloaded one cannot run code.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's own message is long and about its loader's options, not the file.
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated or not written "
                              f"by 'bnn2fpga train'; {type(e).__name__})") from e
    if not isinstance(ckpt, dict) or not {"model", "state_dict"} <= set(ckpt):
        raise CheckpointError(f"{path}: not a bnn2fpga checkpoint (no 'model' and 'state_dict' entries)")
    return ckpt


def _check_same_model(path: Path, found: str, wanted: str) -> None:
    try:
        same = get_spec(found).name == get_spec(wanted).name
    except UnknownModelError:
        same = False
    if not same:
        raise CheckpointError(f"{path}: checkpoint of model {found!r}, not {wanted!r}")


def _restore(target, state: dict, path: Path, what: str) -> None:
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: does not fit {what} ({_first_line(e)})") from e


def _read_resume(path: Path, name: str, dataset: str, limit: int | None, recipe: Recipe) -> dict:
    """Check that ``last.pt`` continues this run and say where it stands (weights are loaded later)."""
    ckpt = _read_checkpoint(path)
    _check_same_model(path, ckpt["model"], name)
    hint = "use the same settings or another out_dir"
    if ckpt.get("dataset") != dataset:
        raise CheckpointError(f"{path}: trained on {ckpt.get('dataset')!r}, not {dataset!r}; {hint}")
    if ckpt.get("limit") != limit:
        raise CheckpointError(f"{path}: trained with limit {ckpt.get('limit')}, not {limit}; {hint}")
    stage, index = ckpt.get("stage"), int(ckpt.get("stage_index", 0))
    names = recipe.stage_names()
    expected = names[index] if index < len(names) else None
    if stage != expected:
        have = "no stages" if stage is None else f"stage {index + 1} {stage!r}"
        want = f"stages {', '.join(names)}" if names else "no stages"
        raise CheckpointError(f"{path}: saved in {have}, but recipe {recipe.name!r} has {want}; {hint}")
    try:
        epoch = int(ckpt["epoch"])
        prog = _Progress(
            stage_index=index,
            stage_epoch=int(ckpt.get("stage_epoch", epoch)),
            epoch=epoch,
            best_val=float(ckpt["best_val_acc"]),
            best_epoch=int(ckpt["best_epoch"]),
            stage_results=[dict(r) for r in ckpt.get("stage_results", [])],
        )
        missing = [k for k in ("optimizer", "rng") if k not in ckpt]
        if missing or "torch" not in ckpt["rng"]:
            raise KeyError(", ".join(missing) or "rng.torch")
    except (KeyError, TypeError, ValueError) as e:
        # Written by something other than a training run (or damaged): it cannot be resumed.
        what = f"entry {_first_line(e)} missing" if isinstance(e, KeyError) else f"malformed ({_first_line(e)})"
        raise CheckpointError(f"{path}: not a resumable training checkpoint ({what}); "
                              "delete it to train from scratch") from None
    return {"ckpt": ckpt, "progress": prog}


# --------------------------------------------------------------------------- reports


def _read_metrics(path: Path) -> list[dict]:
    """The metrics rows a resumed run continues; a damaged file is a CheckpointError naming it."""
    if not path.exists():
        return []
    ints = {"epoch", "images"}

    def parse(k: str, v: str):
        return v if k == _STAGE_FIELD else int(v) if k in ints else float(v)

    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [k for k in _METRIC_FIELDS if k not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"no column {', '.join(missing)}")
            return [
                {k: parse(k, v) for k, v in r.items() if k in _METRIC_FIELDS or k == _STAGE_FIELD}
                for r in reader
            ]
    except (OSError, csv.Error, UnicodeDecodeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable metrics of the run being resumed ({_first_line(e)}); "
                              f"fix or delete it (the checkpoints are enough to resume)") from None


def _write_metrics(path: Path, rows: list[dict]) -> None:
    # Rewritten whole (it is small) so a resumed run never duplicates an epoch's row.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        staged = any(_STAGE_FIELD in r for r in rows)
        writer = csv.DictWriter(f, fieldnames=((_STAGE_FIELD,) if staged else ()) + _METRIC_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, path)


def _json_number(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


def _write_summary(path, spec, dataset, recipe, rows, prog: _Progress, stage, test_acc, ips) -> None:
    summary = {
        "model": spec.name,
        "dataset": dataset,
        "recipe": recipe.name,
        "epochs": rows[-1]["epoch"] if rows else 0,
        "best_epoch": prog.best_epoch,
        "best_val_acc": _json_number(prog.best_val),
        "test_acc": _json_number(test_acc),
        "images_per_s": _json_number(ips),
        "seconds": sum(r["seconds"] for r in rows),
    }
    if recipe.stages:
        summary["stage"] = stage  # the best checkpoint's: the last stage
        summary["stages"] = [{**r, "best_val_acc": _json_number(r["best_val_acc"])} for r in prog.stage_results]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)


def _plot_curves(rows: list[dict], path: Path, title: str) -> None:
    # A bare Figure with its own Agg canvas leaves pyplot's global backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    ax_loss.plot(epochs, [r["loss"] for r in rows], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=title)
    ax_acc.plot(epochs, [100 * r["train_acc"] for r in rows], marker=".", label="train")
    ax_acc.plot(epochs, [100 * r["val_acc"] for r in rows], marker=".", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        for prev, row in zip(rows, rows[1:]):
            if row.get(_STAGE_FIELD) != prev.get(_STAGE_FIELD):
                ax.axvline(prev["epoch"] + 0.5, color="grey", linestyle="--", linewidth=1)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100)
    os.replace(tmp, path)
