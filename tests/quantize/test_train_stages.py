"""Multi-stage recipes, label smoothing and the linear schedule: tiny real runs on sklearn's digits.

The model is defined here: a two-layer MLP whose hidden activations are ReLU in stage
"real" and sign() (straight-through) in stage "binary", registered for the test only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import bnn2fpga.quantize.registry as registry
import bnn2fpga.quantize.train as train_mod
from bnn2fpga.quantize.data.digits import DIGITS_CLASS_NAMES
from bnn2fpga.quantize.preprocess import Preprocessing
from bnn2fpga.quantize.recipes import RECIPES, Recipe, TrainingStage, make_loss
from bnn2fpga.quantize.registry import ModelSpec
from bnn2fpga.quantize.train import CheckpointError, TrainConfig, load_checkpoint, train

NAME = "tiny-staged"
REAL_LR, BINARY_LR = 5e-3, 2e-3
STAGED = Recipe(
    name=NAME,
    optimizer="adam",
    lr=REAL_LR,
    lr_final=None,
    lr_schedule="linear",
    epochs=3,
    batch_size=64,
    loss="cross_entropy",
    label_smoothing=0.1,
    weight_decay=1e-5,
    stages=(TrainingStage("real", epochs=3), TrainingStage("binary", epochs=2, lr=BINARY_LR, weight_decay=0.0)),
)
# Validation accuracy by run-wide epoch: stage real's best is epoch 2 (not its last), stage
# binary's best is its first epoch although it is worse than stage real's best.
SCRIPTED_VAL = [0.5, 0.8, 0.6, 0.4, 0.3]


class TinyStaged(nn.Module):
    """ReLU MLP in stage "real", sign activations (straight-through gradient) in stage "binary"."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)
        self.stage = "real"
        self.entered: list[tuple[str, dict]] = []  # (stage, weights when the hook ran)
        self.group_recipes: list[Recipe] = []

    def set_training_stage(self, name: str) -> None:
        """Switch the hidden activation; records the weights it is switched with."""
        self.entered.append((name, {k: v.clone() for k, v in self.state_dict().items()}))
        self.stage = name

    def param_groups(self, recipe: Recipe) -> list[dict]:
        """Weights decay by the recipe, biases never."""
        self.group_recipes.append(recipe)
        return [
            {"name": "weights", "params": [self.fc1.weight, self.fc2.weight]},
            {"name": "biases", "params": [self.fc1.bias, self.fc2.bias], "weight_decay": 0.0},
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a uint8-valued batch."""
        h = self.fc1(x.flatten(1) / 255)
        h = torch.relu(h) if self.stage == "real" else h + (torch.sign(h) - h).detach()
        return self.fc2(h)


class NoHook(nn.Module):
    """The same network without set_training_stage."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.fc(x.flatten(1) / 255)


BUILT: list[TinyStaged] = []


def _build() -> TinyStaged:
    model = TinyStaged()
    BUILT.append(model)
    return model


def _spec(name: str, factory) -> ModelSpec:
    return ModelSpec(
        name=name, factory=factory, input_shape=(1, 8, 8), input_dtype="UINT8",
        class_names=tuple(DIGITS_CLASS_NAMES), dataset="digits", recipe=NAME,
        preprocessing=Preprocessing(size=(8, 8), luma=True, equalize=False), description="test only",
    )


@pytest.fixture(autouse=True, scope="module")
def registered():
    """The tiny models and their recipe, in the registries for this module only."""
    before = torch.get_num_threads()
    registry.model_names()  # load the zoo first, so it cannot overwrite the test entries
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(RECIPES, NAME, STAGED)
        mp.setitem(registry._REGISTRY, NAME, _spec(NAME, _build))
        mp.setitem(registry._REGISTRY, "tiny-nohook", _spec("tiny-nohook", NoHook))
        yield
    torch.set_num_threads(before)


class Recorder:
    """Scripts validation accuracy by epoch and records optimizers and losses the loop makes."""

    def __init__(self, mp: pytest.MonkeyPatch):
        self.pending: int | None = None
        self.optimizers: list[dict] = []
        self.losses: list[tuple] = []
        real_epoch, real_eval = train_mod._train_epoch, train_mod.evaluate
        real_opt, real_loss = train_mod._make_optimizer, train_mod.make_loss

        def train_epoch(model, optimizer, loss_fn, data, recipe, epoch, progress, desc):
            self.pending = epoch  # the run-wide epoch, the same in resumed and straight runs
            return real_epoch(model, optimizer, loss_fn, data, recipe, epoch, progress, desc)

        def evaluate(model, images, labels, batch_size=256):
            acc = real_eval(model, images, labels, batch_size)
            if self.pending is None:
                return acc  # the test split, in _finish
            epoch, self.pending = self.pending, None
            return SCRIPTED_VAL[epoch]

        def make_optimizer(recipe, model):
            opt = real_opt(recipe, model)
            self.optimizers.append({
                "optimizer": opt,
                "state_entries": len(opt.state),
                "groups": {g["name"]: g["weight_decay"] for g in opt.param_groups},
            })
            return opt

        def make_loss_spy(*args):
            self.losses.append(args)
            return real_loss(*args)

        mp.setattr(train_mod, "_train_epoch", train_epoch)
        mp.setattr(train_mod, "evaluate", evaluate)
        mp.setattr(train_mod, "_make_optimizer", make_optimizer)
        mp.setattr(train_mod, "make_loss", make_loss_spy)


def _cfg(out: Path, **changes) -> TrainConfig:
    base = dict(model=NAME, dataset="digits", out_dir=out, limit=300, progress=False, threads=1)
    return TrainConfig(**{**base, **changes})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _epoch_lines(lines: list[str]) -> list[str]:
    return [line.split("  loss")[0] for line in lines if line.startswith("stage ") and "  loss " in line]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted two-stage run (real 3 epochs, binary 2), shared by several tests."""
    out = tmp_path_factory.mktemp("staged")
    BUILT.clear()
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        rec = Recorder(mp)
        result = train(_cfg(out), log=lines.append)
    return out, result, lines, rec, BUILT[0]


# --------------------------------------------------------------------------- recipes


def test_linear_schedule_values():
    r = STAGED.for_stage("real")
    assert [r.lr_at(e) for e in range(3)] == pytest.approx([REAL_LR, REAL_LR * 2 / 3, REAL_LR / 3])
    assert r.lr_at(r.epochs - 1) == pytest.approx(REAL_LR / r.epochs)  # the last epoch: base / epochs
    assert r.lr_at(r.epochs) == 0.0
    # A group's own base rate decays by the same line.
    assert r.lr_at(1, base=0.03) == pytest.approx(0.02)


def test_for_stage_applies_the_overrides():
    real, binary = STAGED.for_stage("real"), STAGED.for_stage(STAGED.stages[1])
    assert (real.epochs, real.lr, real.weight_decay, real.stages) == (3, REAL_LR, 1e-5, ())
    assert (binary.epochs, binary.lr, binary.weight_decay) == (2, BINARY_LR, 0.0)
    assert binary.label_smoothing == 0.1 and binary.lr_schedule == "linear"
    assert STAGED.stage_names() == ("real", "binary")
    with pytest.raises(ValueError, match="no stage 'nope'"):
        STAGED.for_stage("nope")
    # A list of stages is stored as a tuple (the recipe stays an immutable value).
    assert STAGED.replace(stages=list(STAGED.stages)).stages == STAGED.stages


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(label_smoothing=-0.1), "label_smoothing must be in"),
        (dict(label_smoothing=1.0), "label_smoothing must be in"),
        (dict(loss="squared_hinge"), "label_smoothing applies to the cross_entropy loss only"),
        (dict(lr_schedule="cosine"), "unknown lr_schedule 'cosine'"),
        (dict(lr_final=1e-4), "lr_schedule 'linear' decays to 0 over the epochs by itself"),
        (dict(plateau_factor=0.5), "lr_schedule 'linear' decays to 0 over the epochs by itself"),
        (dict(stages=(TrainingStage("a"), TrainingStage("a"))), "stage names must be unique"),
        (dict(stages=("real",)), "stages must be a tuple of TrainingStage"),
    ],
)
def test_recipe_validation(change, message):
    with pytest.raises(ValueError, match=message):
        STAGED.replace(**change)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="a/b"), "name must be"),
        (dict(name=""), "name must be"),
        (dict(name="x", epochs=0), "epochs must be a positive int"),
        (dict(name="x", lr=-1.0), "lr must be a positive number"),
        (dict(name="x", weight_decay=-1e-5), "weight_decay must be >= 0"),
    ],
)
def test_stage_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingStage(**kwargs)


def test_label_smoothing_loss_matches_torch():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 10), torch.randint(0, 10, (6,))
    smooth = make_loss("cross_entropy", 0.1)(logits, labels)
    assert smooth.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item())
    # torch's definition: (1 - s) * CE + s * mean over classes of -log p.
    logp = logits.log_softmax(1)
    by_hand = 0.9 * F.nll_loss(logp, labels) + 0.1 * (-logp.mean(1)).mean()
    assert smooth.item() == pytest.approx(by_hand.item())
    assert smooth.item() != pytest.approx(F.cross_entropy(logits, labels).item())
    assert make_loss("cross_entropy", 0.0) is F.cross_entropy
    with pytest.raises(ValueError, match="cross_entropy loss only"):
        make_loss("squared_hinge", 0.1)


def test_config_overrides_reach_every_stage():
    spec = registry.get_spec(NAME)
    r = train_mod._recipe_for(spec, _cfg(Path("unused"), epochs=7, lr=REAL_LR / 10))
    assert [r.for_stage(st).epochs for st in r.stages] == [7, 7]
    assert [r.for_stage(st).lr for st in r.stages] == pytest.approx([REAL_LR / 10, BINARY_LR / 10])


# --------------------------------------------------------------------------- training runs


def test_stages_run_in_order_with_their_epochs(straight):
    out, result, lines, rec, model = straight
    assert _epoch_lines(lines) == [
        "stage 1/2 real  epoch 1/3", "stage 1/2 real  epoch 2/3", "stage 1/2 real  epoch 3/3",
        "stage 2/2 binary  epoch 1/2", "stage 2/2 binary  epoch 2/2",
    ]
    assert [name for name, _ in model.entered] == ["real", "binary"]
    assert any("stages real (3 epochs" in line and "-> binary (2 epochs" in line for line in lines)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("stage,epoch,lr,")
    assert [r.split(",")[:2] for r in rows[1:]] == [
        ["real", "1"], ["real", "2"], ["real", "3"], ["binary", "4"], ["binary", "5"]
    ]
    assert result.epochs_run == 5 and result.stage == "binary"


def test_each_stage_gets_a_fresh_optimizer_schedule_and_weight_decay(straight):
    out, _, _, rec, model = straight
    assert len(rec.optimizers) == 2
    first, second = rec.optimizers
    assert first["optimizer"] is not second["optimizer"]
    assert second["state_entries"] == 0 and len(first["optimizer"].state) > 0
    assert first["groups"] == {"weights": 1e-5, "biases": 0.0}
    assert second["groups"] == {"weights": 0.0, "biases": 0.0}
    # The param_groups hook is handed each stage's flat recipe.
    assert [(r.weight_decay, r.lr, r.stages) for r in model.group_recipes] == [(1e-5, REAL_LR, ()),
                                                                               (0.0, BINARY_LR, ())]
    # Linear decay per stage; the rate restarts at the binary stage's own lr.
    lrs = [float(r.split(",")[2]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert lrs == pytest.approx([REAL_LR, REAL_LR * 2 / 3, REAL_LR / 3, BINARY_LR, BINARY_LR / 2], rel=1e-5)
    assert rec.losses == [("cross_entropy", 0.1)]


def test_stage_two_starts_from_stage_one_best(straight):
    out, result, lines, _, model = straight
    best_real = torch.load(out / "best-real.pt", weights_only=True)
    assert (best_real["stage"], best_real["best_epoch"], best_real["epoch"]) == ("real", 2, 2)
    entered_binary = model.entered[1][1]
    assert _same(entered_binary, best_real["state_dict"])
    # ... which is not where stage real ended (epoch 3).
    assert not _same(entered_binary, model.entered[0][1])
    assert any(line.startswith("starting from stage real's best: epoch 2, val 80.0%") for line in lines)


def test_final_checkpoint_and_summary_are_the_last_stage_best(straight):
    out, result, lines, _, _ = straight
    best = torch.load(out / "best.pt", weights_only=True)
    last = torch.load(out / "last.pt", weights_only=True)
    # Stage binary's best is its first epoch (0.4), below stage real's 0.8: best is per stage.
    assert (best["stage"], best["stage_index"], best["stage_epoch"], best["epoch"]) == ("binary", 1, 1, 4)
    assert (last["stage"], last["stage_epoch"], last["epoch"]) == ("binary", 2, 5)
    assert last["stage_results"] == [{"name": "real", "epochs": 3, "best_epoch": 2, "best_val_acc": 0.8}]
    assert result.best_val_acc == pytest.approx(0.4) and result.test_acc is not None
    assert _same(_weights(out / "best-binary.pt"), best["state_dict"])
    summary = json.loads((out / "train_summary.json").read_text())
    assert (summary["stage"], summary["best_epoch"], summary["epochs"]) == ("binary", 4, 5)
    assert summary["stages"] == [
        {"name": "real", "epochs": 3, "best_epoch": 2, "best_val_acc": 0.8},
        {"name": "binary", "epochs": 2, "best_epoch": 4, "best_val_acc": 0.4},
    ]
    assert any(line.startswith("best epoch 4 (stage binary): val 40.0%") for line in lines)


def test_load_checkpoint_restores_the_stage(straight):
    out = straight[0]
    BUILT.clear()
    model, ckpt = load_checkpoint(out / "best.pt", model=NAME)
    assert model.stage == "binary" and [name for name, _ in model.entered] == ["binary"]
    assert _same(model.state_dict(), ckpt["state_dict"]) and not model.training
    # The binary forward is what the checkpoint holds: hidden units are +-1.
    x = torch.randint(0, 256, (4, 1, 8, 8)).float()
    h = model.fc1(x.flatten(1) / 255)
    assert torch.allclose(model(x), model.fc2(torch.sign(h)))
    real, _ = load_checkpoint(out / "best-real.pt")
    assert real.stage == "real" and [name for name, _ in real.entered] == ["real"]
    # Export loads through load_checkpoint, so an exported model is in its stage too.
    from bnn2fpga.quantize.export import load_for_export

    exported, info = load_for_export(NAME, out / "best.pt")
    assert exported.stage == "binary" and info["trained"]


@pytest.mark.parametrize("interrupt_at", ["stage 2/2 binary  epoch 1/2", "starting from stage real's best"])
def test_interrupted_staged_run_resumes_in_its_stage(tmp_path, straight, interrupt_at):
    class Interrupt(Exception):
        pass

    def stop(line: str) -> None:
        if line.startswith(interrupt_at):
            raise Interrupt

    with pytest.MonkeyPatch.context() as mp:
        Recorder(mp)
        with pytest.raises(Interrupt):
            train(_cfg(tmp_path), log=stop)
    BUILT.clear()
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        rec = Recorder(mp)
        result = train(_cfg(tmp_path), log=lines.append)
    mid_stage = interrupt_at.startswith("stage")
    assert any(line.startswith(f"resuming {tmp_path / 'last.pt'}: stage {2 if mid_stage else 1}/2 "
                               f"{'binary, 1 of 2' if mid_stage else 'real, 3 of 3'} epochs done")
               for line in lines)
    assert _epoch_lines(lines) == (["stage 2/2 binary  epoch 2/2"] if mid_stage
                                   else ["stage 2/2 binary  epoch 1/2", "stage 2/2 binary  epoch 2/2"])
    # Mid-stage the model re-enters binary and keeps its optimizer state; at the boundary it
    # re-enters real (to load last.pt), then binary from real's best with a fresh optimizer.
    assert [name for name, _ in BUILT[0].entered] == (["binary"] if mid_stage else ["real", "binary"])
    assert rec.optimizers[0]["state_entries"] == 0  # restored from last.pt only after it is built
    out = straight[0]
    for name in ("last.pt", "best.pt", "best-real.pt", "best-binary.pt"):
        assert _same(_weights(tmp_path / name), _weights(out / name)), name
    resumed_opt = torch.load(tmp_path / "last.pt", weights_only=True)["optimizer"]["state"]
    straight_opt = torch.load(out / "last.pt", weights_only=True)["optimizer"]["state"]
    assert resumed_opt.keys() == straight_opt.keys()
    for key in straight_opt:
        assert _same(resumed_opt[key], straight_opt[key]), key
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 6
    assert result.best_val_acc == pytest.approx(0.4) and result.stage == "binary"
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["stages"] == json.loads((out / "train_summary.json").read_text())["stages"]


def test_resume_with_other_stages_is_refused(tmp_path, straight):
    (tmp_path / "last.pt").write_bytes((straight[0] / "last.pt").read_bytes())
    other = STAGED.replace(stages=(TrainingStage("real", epochs=3), TrainingStage("finetune", epochs=2)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(RECIPES, NAME, other)
        with pytest.raises(CheckpointError, match="saved in stage 2 'binary', but recipe 'tiny-staged' has "
                                                  "stages real, finetune"):
            train(_cfg(tmp_path), log=lambda _: None)
        mp.setitem(RECIPES, NAME, STAGED.replace(stages=()))
        with pytest.raises(CheckpointError, match="has no stages"):
            train(_cfg(tmp_path), log=lambda _: None)


def test_model_without_the_hook_is_a_clear_error(tmp_path, straight):
    with pytest.raises(TypeError, match=r"recipe 'tiny-staged' trains in stages \(real, binary\) but NoHook "
                                        r"has no set_training_stage\(name\) method"):
        train(_cfg(tmp_path, model="tiny-nohook"), log=lambda _: None)
    assert not (tmp_path / "last.pt").exists()
    # A staged checkpoint relabelled as the hook-less model cannot be loaded in its stage.
    ckpt = torch.load(straight[0] / "best.pt", weights_only=True)
    ckpt["model"], ckpt["state_dict"] = "tiny-nohook", NoHook().state_dict()
    torch.save(ckpt, tmp_path / "nohook.pt")
    with pytest.raises(CheckpointError, match="checkpoint of training stage 'binary', but NoHook has no "
                                              "set_training_stage"):
        load_checkpoint(tmp_path / "nohook.pt")


def test_cli_train_shows_the_stages(tmp_path, capfd):
    from bnn2fpga.flows.cli import main

    code = main(["train", NAME, "--dataset", "digits", "--epochs", "1", "--limit", "120",
                 "--out", str(tmp_path)])
    out = capfd.readouterr().out
    assert code == 0
    assert "stages real (1 epochs, lr 0.005, wd 1e-05) -> binary (1 epochs, lr 0.002, wd 0)" in out
    assert "label smoothing 0.1" in out and "lr 0.005 linear->0" in out
    assert "stage 1/2 real  epoch 1/1  loss" in out and "stage 2/2 binary  epoch 1/1  loss" in out
    assert math.isfinite(json.loads((tmp_path / "train_summary.json").read_text())["best_val_acc"])
