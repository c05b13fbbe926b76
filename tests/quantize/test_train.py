"""Tests for quantize.recipes and quantize.train: real (tiny) training runs on sklearn's digits."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear
from PIL import Image

import bnn2fpga.quantize.train as train_mod
from bnn2fpga.quantize.data import DatasetError, load_dataset
from bnn2fpga.quantize.recipes import RECIPES, get_recipe, make_loss, squared_hinge
from bnn2fpga.quantize.registry import create_model, get_spec
from bnn2fpga.quantize.train import (
    CheckpointError,
    TrainConfig,
    TrainConfigError,
    augment,
    evaluate,
    load_checkpoint,
    train,
    train_step,
)

EPOCH_LINE = re.compile(r"^epoch \d+/\d+  loss \d+\.\d{3}  train \d+\.\d%  val \d+\.\d%  [\d,]+ img/s$")


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    # The runs use one thread (steady timing on a shared 2-core machine); put the count back.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cfg(out_dir: Path, **changes) -> TrainConfig:
    base = dict(
        model="cbcnn-mnist",
        dataset="digits",
        out_dir=out_dir,
        limit=400,
        epochs=3,
        batch_size=50,
        progress=False,
        threads=1,
    )
    return TrainConfig(**{**base, **changes})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def _binary_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]


@pytest.fixture(scope="module")
def straight3(tmp_path_factory):
    """An uninterrupted 3-epoch run (400 images), shared by several tests."""
    out = tmp_path_factory.mktemp("straight3")
    lines: list[str] = []
    result = train(_cfg(out), log=lines.append)
    return out, result, lines


# --------------------------------------------------------------------------- recipes


def test_recipes_match_the_paper():
    gtsrb, mnist = get_recipe("cbcnn-gtsrb"), get_recipe("cbcnn-mnist")
    for r in (gtsrb, mnist):
        assert (r.optimizer, r.lr, r.lr_final, r.loss) == ("adam", 1e-3, 1e-4, "squared_hinge")
        assert (r.val_fraction, r.seed, r.weight_decay) == (0.1, 37, 0.0)
    assert (gtsrb.epochs, gtsrb.batch_size) == (1000, 200)
    assert gtsrb.augment == {"rotation": 15, "zoom": 0.2, "shift": 0.1}
    assert (mnist.epochs, mnist.batch_size, mnist.augment) == (500, 50, {})
    assert set(RECIPES) >= {"cbcnn-gtsrb", "cbcnn-mnist"}


def test_recipe_validation_and_lookup():
    r = get_recipe("cbcnn-mnist")
    assert r.replace(epochs=3).epochs == 3 and r.epochs == 500
    bad = [
        dict(epochs=0),
        dict(batch_size=-1),
        dict(lr=0.0),
        dict(optimizer="sgd-ish"),
        dict(loss="hinge-ish"),
        dict(val_fraction=1.0),
        dict(augment={"flip": 1}),
        dict(no_such_field=1),
    ]
    for change in bad:
        with pytest.raises(ValueError):
            r.replace(**change)
    with pytest.raises(ValueError, match="cbcnn-gtsrb, cbcnn-mnist"):
        get_recipe("nope")
    with pytest.raises(ValueError):
        make_loss("nope")


def test_squared_hinge_by_hand():
    logits = torch.tensor([[0.5, -2.0, 1.5], [2.0, 0.0, -0.5]])
    labels = torch.tensor([0, 2])
    # Row 0, t = (+1,-1,-1): (1-0.5)^2, max(0,1-2)^2, (1+1.5)^2 = 0.25, 0, 6.25
    # Row 1, t = (-1,-1,+1): (1+2)^2, (1+0)^2, (1+0.5)^2 = 9, 1, 2.25
    expected = (0.25 + 0 + 6.25 + 9 + 1 + 2.25) / 6
    assert squared_hinge(logits, labels).item() == pytest.approx(expected)
    assert make_loss("squared_hinge") is squared_hinge
    assert make_loss("cross_entropy")(logits, labels).item() == pytest.approx(
        nn.functional.cross_entropy(logits, labels).item()
    )


def test_lr_schedule():
    r = get_recipe("cbcnn-gtsrb")
    assert r.lr_at(0) == pytest.approx(1e-3)
    # Keras-style per-epoch decay: the last epoch is one decay step above lr_final.
    assert r.lr_at(r.epochs - 1) == pytest.approx(1e-3 * 0.1 ** (999 / 1000))
    assert r.lr_at(r.epochs) == pytest.approx(1e-4)
    assert r.replace(lr_final=None).lr_at(500) == 1e-3


# --------------------------------------------------------------------------- building blocks


def test_train_step_constrains_latent_weights_and_bn_scales():
    torch.manual_seed(0)
    model = create_model("cbcnn-mnist")
    with torch.no_grad():  # start outside the constraints, so the projection must act
        for m in _binary_layers(model):
            m.weight.mul_(1000)  # initial latent weights are ~0.03: now far beyond 1
        for block in model.conv_blocks():
            block.bn.weight.fill_(-0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (8, 1, 28, 28)).float()
    loss, correct = train_step(model, opt, squared_hinge, x, torch.arange(8))
    assert math.isfinite(loss) and 0 <= correct <= 8
    for m in _binary_layers(model):
        assert m.weight.abs().max().item() == 1.0
    for block in model.conv_blocks():
        assert (block.bn.weight > 0).all()


def test_train_step_without_constrain():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss, _ = train_step(model, opt, squared_hinge, torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1]))
    assert math.isfinite(loss)


def test_augment_keeps_integer_pixels_and_is_seeded():
    x = torch.randint(0, 256, (6, 1, 32, 32)).float()
    assert torch.equal(augment(x), x)  # no jitter: identity
    params = dict(rotation=15, zoom=0.2, shift=0.1)
    a = augment(x, generator=torch.Generator().manual_seed(1), **params)
    b = augment(x, generator=torch.Generator().manual_seed(1), **params)
    c = augment(x, generator=torch.Generator().manual_seed(2), **params)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, a.round()) and a.min() >= 0 and a.max() <= 255
    assert not torch.equal(a, x)


def test_evaluate_restores_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        model[1].bias.zero_()
    x = np.array([[[[9, 0], [0, 0]]], [[[0, 9], [0, 0]]], [[[0, 9], [0, 0]]]], dtype=np.uint8)
    model.train()
    assert evaluate(model, x, np.array([0, 1, 0]), batch_size=2) == pytest.approx(2 / 3)
    assert model.training


# --------------------------------------------------------------------------- training runs


def test_run_writes_metrics_checkpoints_summary_and_curves(straight3):
    out, result, lines = straight3
    assert result.epochs_run == 3
    assert result.checkpoint == out / "best.pt" and result.last == out / "last.pt"
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 3 and all(EPOCH_LINE.match(line) for line in epoch_lines)

    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,lr,loss,train_acc,val_acc,images,seconds,images_per_s"
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert float(rows[1].split(",")[1]) == pytest.approx(1e-3)

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["model"] == "cbcnn-mnist" and summary["dataset"] == "digits"
    assert summary["epochs"] == 3 and summary["test_acc"] == pytest.approx(result.test_acc)
    assert summary["best_val_acc"] == pytest.approx(result.best_val_acc)
    assert summary["images_per_s"] > 0 and summary["seconds"] > 0
    assert result.curve_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model, ckpt = load_checkpoint(result.checkpoint, model="cbcnn-mnist")
    assert ckpt["model"] == "cbcnn-mnist" and ckpt["dataset"] == "digits"
    assert ckpt["recipe"]["epochs"] == 3 and ckpt["class_names"] == [str(d) for d in range(10)]
    assert ckpt["best_val_acc"] == result.best_val_acc and not model.training
    assert ckpt["test_acc"] == result.test_acc
    for m in _binary_layers(model):
        assert m.weight.abs().max().item() <= 1.0
    # The reported test accuracy is the best checkpoint's.
    test = load_dataset("digits", None, "test")
    x = get_spec("cbcnn-mnist").preprocessing(test.images)
    assert evaluate(model, x, test.labels) == pytest.approx(result.test_acc)


@pytest.fixture
def no_test_split(monkeypatch):
    """Make the dataset's test split missing (also saves time where test accuracy is beside the point)."""
    real = train_mod.load_dataset

    def train_only(name, root, split):
        if split == "test":
            raise DatasetError(f"{name}: no test split here")
        return real(name, root, split)

    monkeypatch.setattr(train_mod, "load_dataset", train_only)


def test_two_runs_give_identical_weights(tmp_path, no_test_split):
    a = train(_cfg(tmp_path / "a", epochs=1, limit=100), log=lambda _: None)
    b = train(_cfg(tmp_path / "b", epochs=1, limit=100), log=lambda _: None)
    _assert_same_weights(a.last, b.last)
    assert a.best_val_acc == b.best_val_acc


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, straight3):
    class Interrupt(Exception):
        pass

    def stop_after_epoch_2(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_cfg(tmp_path), log=stop_after_epoch_2)
    lines: list[str] = []
    result = train(_cfg(tmp_path), log=lines.append)
    assert result.epochs_run == 1
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["3/3"]
    _assert_same_weights(result.last, straight3[1].last)
    _assert_same_weights(result.checkpoint, straight3[1].checkpoint)
    epochs = [r.split(",")[0] for r in (tmp_path / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"]


def test_finished_run_extends_without_redoing_epochs(tmp_path, no_test_split):
    train(_cfg(tmp_path, epochs=2, limit=100), log=lambda _: None)
    before = (tmp_path / "metrics.csv").read_text().splitlines()
    result = train(_cfg(tmp_path, epochs=3, limit=100), log=lambda _: None)
    after = (tmp_path / "metrics.csv").read_text().splitlines()
    assert result.epochs_run == 1
    assert after[:3] == before and [r.split(",")[0] for r in after[1:]] == ["1", "2", "3"]
    # The schedule follows the new total of epochs.
    lr3 = float(after[3].split(",")[1])
    assert lr3 == pytest.approx(get_recipe("cbcnn-mnist").replace(epochs=3).lr_at(2), rel=1e-5)
    # A run that is already complete trains nothing and still reports.
    again = train(_cfg(tmp_path, epochs=3, limit=100), log=lambda _: None)
    assert again.epochs_run == 0 and again.best_val_acc == result.best_val_acc


def test_checkpoint_errors(tmp_path, straight3):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"definitely not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as err:
        load_checkpoint(corrupt)
    assert "\n" not in str(err.value)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(straight3[1].checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")

    # Asked for another model.
    with pytest.raises(CheckpointError, match="checkpoint of model 'cbcnn-mnist', not 'cbcnn-gtsrb'"):
        load_checkpoint(straight3[1].checkpoint, model="cbcnn-gtsrb")
    # Labelled as another model, whose weights do not fit.
    ckpt = torch.load(straight3[1].checkpoint, weights_only=True)
    ckpt["model"] = "cbcnn-gtsrb"
    relabelled = tmp_path / "relabelled" / "last.pt"
    relabelled.parent.mkdir()
    torch.save(ckpt, relabelled)
    with pytest.raises(CheckpointError, match="does not fit model 'cbcnn-gtsrb'") as err:
        load_checkpoint(relabelled)
    assert "\n" not in str(err.value)
    # Resuming into a directory that holds another model's run.
    with pytest.raises(CheckpointError, match="not 'cbcnn-mnist'"):
        train(_cfg(relabelled.parent), log=lambda _: None)


def test_missing_test_split_is_fine(tmp_path, no_test_split):
    lines: list[str] = []
    result = train(_cfg(tmp_path, epochs=1, limit=100), log=lines.append)
    assert result.test_acc is None
    assert json.loads((tmp_path / "train_summary.json").read_text())["test_acc"] is None
    assert any("no test split" in line for line in lines)


def test_accuracy_clearly_above_chance(straight3):
    # Measured: 72.9 % test and 72.5 % validation accuracy (10 classes, chance 10 %)
    # after 3 epochs on 360 training images.
    result = straight3[1]
    assert result.test_acc > 0.5
    assert result.best_val_acc > 0.4


# --------------------------------------------------------------------------- bad settings and inputs


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(epochs=0), "--epochs must be >= 1, got 0"),
        (dict(epochs=-3), "--epochs must be >= 1, got -3"),
        (dict(epochs=2.5), "--epochs must be a whole number, got 2.5"),
        (dict(batch_size=0), "--batch-size must be >= 1, got 0"),
        (dict(batch_size=-1), "--batch-size must be >= 1, got -1"),
        (dict(lr=float("nan")), "--lr must be a finite number > 0, got nan"),
        (dict(lr=float("inf")), "--lr must be a finite number > 0, got inf"),
        (dict(lr=0.0), "--lr must be a finite number > 0, got 0.0"),
        (dict(lr=-1e-3), "--lr must be a finite number > 0, got -0.001"),
        (dict(limit=0), "--limit must be >= 1, got 0"),
        (dict(limit=-5), "--limit must be >= 1, got -5"),
        (dict(threads=0), "threads must be >= 1, got 0"),
    ],
)
def test_nonsense_settings_are_a_config_error(tmp_path, change, message):
    with pytest.raises(TrainConfigError) as err:
        _cfg(tmp_path / "run", **change)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_settings_changed_after_construction_are_checked_before_anything_runs(tmp_path):
    cfg = _cfg(tmp_path / "run")
    cfg.batch_size = 0
    with pytest.raises(TrainConfigError, match="^--batch-size must be >= 1, got 0$"):
        train(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_dataset_with_fewer_classes_than_the_model_is_a_config_error(tmp_path):
    # cbcnn-gtsrb has 43 outputs; digits has 10 classes.
    with pytest.raises(TrainConfigError) as err:
        train(_cfg(tmp_path, model="cbcnn-gtsrb", epochs=1), log=lambda _: None)
    msg = str(err.value)
    assert msg.startswith("dataset 'digits' has 10 classes but model 'cbcnn-gtsrb' has 43")
    assert "\n" not in msg
    assert not list(tmp_path.glob("*.pt"))


def test_folder_dataset_with_more_classes_than_the_model_is_a_config_error(tmp_path):
    root = tmp_path / "data"
    for k in range(12):
        (root / f"class{k:02d}").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 20 * k + i, np.uint8)).save(root / f"class{k:02d}" / f"{i}.png")
    cfg = _cfg(tmp_path / "run", dataset="folder", data_root=root, epochs=1, limit=None)
    with pytest.raises(TrainConfigError, match="^dataset 'folder' has 12 classes but model 'cbcnn-mnist' has 10"):
        train(cfg, log=lambda _: None)
    assert not list((tmp_path / "run").glob("*.pt"))


def _copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("last.pt", "best.pt", "metrics.csv"):
        shutil.copy(src / name, dst / name)
    return dst


def test_corrupt_metrics_of_a_resumed_run_is_a_checkpoint_error(tmp_path, straight3):
    run = _copy_run(straight3[0], tmp_path / "run")
    (run / "metrics.csv").write_text("epoch,lr,loss\nthree,x,y\n")
    with pytest.raises(CheckpointError) as err:
        train(_cfg(run), log=lambda _: None)
    msg = str(err.value)
    assert msg.startswith(f"{run / 'metrics.csv'}: unreadable metrics") and "\n" not in msg


def test_incomplete_checkpoint_to_resume_is_a_checkpoint_error(tmp_path, straight3):
    run = _copy_run(straight3[0], tmp_path / "run")
    ckpt = torch.load(run / "last.pt", weights_only=True)
    del ckpt["epoch"]
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(CheckpointError) as err:
        train(_cfg(run), log=lambda _: None)
    msg = str(err.value)
    assert msg.startswith(f"{run / 'last.pt'}: not a resumable training checkpoint (entry 'epoch' missing)")
    assert "\n" not in msg
