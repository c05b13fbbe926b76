"""DRA-BNN: ResNet-18 arithmetic, alpha, dual-rate training, loaders, the FINN mapping bit for bit."""
from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import bnn2fpga.quantize.train as train_mod
from bnn2fpga.quantize.data import load_dataset
from bnn2fpga.quantize.data.folders import GARBAGE_CLASS_NAMES
from bnn2fpga.quantize.models import dra_bnn
from bnn2fpga.quantize.models.dra_bnn import (
    AlphaBinaryConv2d,
    DeployableDRABNN,
    DRABNNConfig,
    alpha_parameters,
)
from bnn2fpga.quantize.recipes import EarlyStopping, get_recipe
from bnn2fpga.quantize.registry import ModelSpec, count_binary_weight_bits, count_trainable, get_spec

# A reduced deployable config that still has every structure of the full one: the stem,
# an identity block right after it (no re-quantization), an identity block with
# re-quantization, a stride-2 block with a 1x1 shortcut, and the tied pool + FC.
SMALL = DRABNNConfig(in_shape=(3, 16, 16), num_classes=12, widths=(8, 16), blocks=(2, 1))


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- architecture


def _resnet18_params(widths, classes, stem_in=3, *, alpha=True, prelu=True, fc_alpha=True) -> int:
    """Trainable parameters of the CIFAR-style ResNet-18, counted layer by layer from the paper's description."""
    total = stem_in * widths[0] * 9 + 2 * widths[0] + prelu  # stem conv, BN, PReLU

    def binary_conv(cin, cout, k):
        return cin * cout * k * k + alpha + 2 * cout + prelu  # weights, alpha, BN, PReLU

    cin = widths[0]
    for stage, cout in enumerate(widths):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            total += binary_conv(cin, cout, 3) + binary_conv(cout, cout, 3)
            if stride != 1 or cin != cout:
                total += binary_conv(cin, cout, 1)
            cin = cout
    return total + widths[-1] * classes + fc_alpha


def test_parameter_counts_are_resnet18():
    # The torchvision-style CIFAR ResNet-18 has 11,173,962 parameters (with an FC bias);
    # DRA-BNN drops the bias (-10) and adds 20 alphas and 20 PReLU slopes.
    assert _resnet18_params((64, 128, 256, 512), 10, alpha=False, prelu=False, fc_alpha=False) + 10 == 11_173_962
    assert count_trainable(get_spec("dra-bnn-cifar10").factory()) == 11_173_962 - 10 + 20 + 20 == 11_173_992
    assert count_trainable(get_spec("dra-bnn").factory()) == _resnet18_params((64, 128, 256, 512), 12) == 11_175_016
    waste = get_spec("dra-bnn-waste").factory()
    assert count_trainable(waste) == _resnet18_params((32, 64, 128, 256), 12) == 2_798_152
    # Binary weights: the 16 3x3 convs, the three 1x1 shortcuts and the FC (the stem is 8-bit).
    w = (32, 64, 128, 256)
    pairs = list(zip(w, w[1:]))
    convs = 9 * (w[0] * w[0] * 4 + sum(a * b + 3 * b * b for a, b in pairs)) + sum(a * b for a, b in pairs)
    assert count_binary_weight_bits(waste) == convs + 256 * 12 == 2_792_448
    assert len(alpha_parameters(waste)) == 16 + 3 + 1  # one per binary layer; the stem has none


def test_specs():
    for name in ("dra-bnn", "dra-bnn-cifar10"):
        spec = get_spec(name)
        assert not spec.deployable and spec.deployable_variant == "dra-bnn-waste"
    waste = get_spec("dra-bnn-waste")
    assert waste.deployable and waste.input_shape == (3, 64, 64) and waste.input_dtype == "UINT8"
    assert waste.class_names == tuple(GARBAGE_CLASS_NAMES) and waste.dataset == "garbage"
    assert waste.preprocessing.size == (64, 64) and not waste.preprocessing.luma
    assert get_spec("dra-bnn-cifar10").dataset == "cifar10" and get_spec("dra-bnn").input_shape == (3, 224, 224)


def test_alpha_forward_and_gradients_follow_the_paper():
    torch.manual_seed(0)
    conv = AlphaBinaryConv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.alpha.fill_(0.7)
        conv.weight[0, 0, 0, 0] = 0.0  # torch.sign(0) == 0, as in the authors' code
    x = torch.randn(2, 3, 5, 5)
    y = conv(x)
    wb = torch.sign(conv.weight) * 0.7
    torch.testing.assert_close(y, F.conv2d(x, wb, padding=1))
    g = torch.randn_like(y)
    y.backward(g)
    # grad_W = dL/dW_b (identity STE), grad_alpha = sum(dL/dW_b * sign(W)).
    wb_ = wb.detach().requires_grad_(True)
    F.conv2d(x, wb_, padding=1).backward(g)
    torch.testing.assert_close(conv.weight.grad, wb_.grad)
    torch.testing.assert_close(conv.alpha.grad, (wb_.grad * torch.sign(conv.weight)).sum())


def _small_model(seed: int = 0) -> DeployableDRABNN:
    torch.manual_seed(seed)
    return DeployableDRABNN(SMALL)


def test_deployable_model_is_binary_with_integer_residuals():
    model = _small_model().eval()
    seen: dict[str, list[torch.Tensor]] = {"xnor_in": [], "add_in": []}
    for m in model.binary_layers():
        w = m.quant_weight().value
        assert set(torch.unique(w).tolist()) <= {-1.0, 1.0}
        if isinstance(m, nn.Conv2d):  # the FC reads the integer pooled sums, not signs
            m.register_forward_pre_hook(lambda mod, args: seen["xnor_in"].append(args[0].detach()))
    for blk in (b for b in model.body if isinstance(b, dra_bnn.DeployBlock)):
        blk.q.register_forward_hook(lambda mod, args, out: seen["add_in"].append(out.detach()))
    x = torch.randint(0, 256, (3, 3, 16, 16)).float()
    with torch.no_grad():
        scores = model.body(x)
    assert len(seen["xnor_in"]) == 7  # six 3x3 convs and one 1x1 shortcut
    for t in seen["xnor_in"]:
        assert set(torch.unique(t).tolist()) <= {-1.0, 1.0}  # signs, and -1 padding
    half = 2 ** (SMALL.residual_bits - 1)
    for t in seen["add_in"]:
        assert torch.equal(t, t.round()) and t.min() >= -half and t.max() <= half - 1
    assert torch.equal(scores, scores.round())  # the accelerator's output is integers
    # The stem's standardization is exactly the conv of the standardized, raw-zero-padded image.
    stem = model.body[1]
    with torch.no_grad():
        got = stem.standardize(stem.conv(x))
        w = stem.conv.quant_weight().value
        mean = torch.tensor(dra_bnn.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = sum(dra_bnn.IMAGENET_STD) / 3
        want = F.conv2d((F.pad(x, (1, 1, 1, 1)) - mean) / std, w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-3)


def test_export_form_of_pool_and_fc_is_exact():
    model = _small_model().eval()
    x = torch.randint(0, 256, (4, 3, 16, 16)).float()
    with torch.no_grad():
        pooled = model(x)
        model.set_deploy_order(True)
        flat = model(x)
        model.set_deploy_order(False)
    assert torch.equal(pooled, flat)
    assert set(model.state_dict()) == set(_small_model().state_dict())  # the export copy is dropped again


# --------------------------------------------------------------------------- dual-rate training


def test_param_groups_own_rate_no_decay_and_clamp():
    model = _small_model()
    recipe = get_recipe("dra-bnn")
    optimizer = train_mod._make_optimizer(recipe, model)
    weights, alphas = optimizer.param_groups
    assert (weights["name"], weights["lr"], weights["weight_decay"]) == ("weights", 1e-3, 1e-4)
    assert (alphas["name"], alphas["lr"], alphas["weight_decay"]) == ("alpha", 0.01, 0.0)
    assert {id(p) for p in alphas["params"]} == {id(p) for p in alpha_parameters(model)}
    assert len(alphas["params"]) == 7 + 1  # six 3x3 convs, one shortcut, the FC (in the head)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == count_trainable(model)

    # Adam's first step moves every parameter by about its group's rate: alpha by 0.01, weights by 1e-3.
    a = alpha_parameters(model)
    with torch.no_grad():
        a[0].fill_(0.105)  # pushed down: would reach 0.095, clamped to 0.1
        a[1].fill_(1.995)  # pushed up: would reach 2.005, clamped to 2.0
    before = {id(p): p.detach().clone() for p in model.parameters()}
    # Large enough to dominate the cross entropy's pull on alpha (Adam's first step is lr * sign(grad)).
    push = 1e6 * torch.tensor([1.0, -1.0] + [1.0] * (len(a) - 2))

    def loss_fn(logits, labels):
        return F.cross_entropy(logits, labels) + (push * torch.stack(a)).sum()

    x, y = torch.randint(0, 256, (4, 3, 16, 16)).float(), torch.tensor([0, 1, 2, 3])
    train_mod.train_step(model, optimizer, loss_fn, x, y)
    assert a[0].item() == pytest.approx(0.1) and a[1].item() == pytest.approx(2.0)
    for p in a[2:]:
        assert (before[id(p)] - p.detach()).item() == pytest.approx(0.01, rel=1e-3)
    moved = max((p.detach() - before[id(p)]).abs().max().item() for p in weights["params"])
    assert moved == pytest.approx(1e-3, rel=1e-2)
    # The other constraints: latent binary weights in [-1, 1], PReLU slopes >= 0.
    with torch.no_grad():
        model.binary_layers()[0].weight.fill_(3.0)
        next(m for m in model.modules() if isinstance(m, nn.PReLU)).weight.fill_(-0.5)
    model.constrain()
    assert model.binary_layers()[0].weight.max() == 1.0
    assert min(m.weight.min().item() for m in model.modules() if isinstance(m, nn.PReLU)) == 0.0


def test_models_without_the_hook_keep_one_group():
    optimizer = train_mod._make_optimizer(get_recipe("cbcnn-mnist"), get_spec("cbcnn-mnist").factory())
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 1e-3


def test_recipe_matches_the_paper_and_validates():
    r = get_recipe("dra-bnn")
    assert (r.optimizer, r.lr, r.lr_final, r.loss, r.epochs) == ("adam", 1e-3, None, "cross_entropy", 400)
    assert r.group_lr == {"alpha": 0.01}
    assert (r.plateau_factor, r.plateau_patience, r.min_lr) == (0.5, 5, 1e-4)
    assert (r.early_stop_patience, r.early_stop_delta) == (10, 1e-3)
    assert (r.weight_decay, r.batch_size) == (1e-4, 8)
    assert r.augment == {"rotation": 15, "shift": 0.1, "hflip": 0.5}
    for bad in (dict(plateau_factor=1.5), dict(lr_final=1e-4), dict(min_lr=-1.0), dict(plateau_patience=-1),
                dict(early_stop_patience=0), dict(early_stop_delta=-0.1), dict(group_lr={"alpha": 0})):
        with pytest.raises(ValueError):
            r.replace(**bad)


def test_early_stopping_rule():
    stop = EarlyStopping(patience=2, delta=0.01)
    assert [stop.update(v) for v in (1.0, 0.995, 0.98, 0.979, 0.975)] == [False, False, False, False, True]
    assert stop.best == 0.98 and stop.bad_epochs == 2
    again = EarlyStopping(2, 0.01)
    again.load_state_dict(stop.state_dict())
    assert again.stopped and again.best == 0.98


# --------------------------------------------------------------------------- data


def _write_garbage(root: Path, per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(GARBAGE_CLASS_NAMES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = 20 + 7 * i, 24 + 5 * c  # varying sizes, as in the real set
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            img[..., c % 3] = 40 * (c % 6)  # a class-dependent colour cue
            ext = ".jpg" if i % 2 else ".png"
            Image.fromarray(img).save(root / name / f"{name}{i}{ext}")
    return root


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> Path:
    """A 12-class Garbage Classification folder tree (3 images per class, mixed sizes and formats)."""
    return _write_garbage(tmp_path_factory.mktemp("garbage"))


def test_garbage_layout_loads_through_the_model_dataset(garbage):
    spec = get_spec("dra-bnn-waste")
    train, test = (load_dataset(spec.dataset, garbage, s) for s in ("train", "test"))
    assert train.class_names == list(spec.class_names) and len(train) == 24 and len(test) == 12
    x = spec.preprocessing(train.images)
    assert x.shape == (24, 3, 64, 64) and x.dtype == np.uint8
    with torch.no_grad():
        assert spec.factory().eval()(torch.from_numpy(x[:2]).float()).shape == (2, 12)


def test_cifar10_batches_load_through_the_cifar_variant(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 7]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in dra_bnn.CIFAR10_CLASS_NAMES]}, f)
    spec = get_spec("dra-bnn-cifar10")
    ds = load_dataset(spec.dataset, tmp_path, "train")
    assert tuple(ds.class_names) == spec.class_names
    assert spec.preprocessing(ds.images).shape == (10, 3, 32, 32)


# --------------------------------------------------------------------------- plateau + early stopping, tiny runs


@pytest.fixture
def tiny_waste(monkeypatch):
    """dra-bnn-waste shrunk to SMALL at 16x16, with a recipe whose loss cannot improve.

    Rates of 1e-8 leave the weights as they are, and one full batch of the same images
    gives the same loss every epoch, so the plateau and early-stopping decisions are
    deterministic: no epoch after the first improves.
    """
    spec = dataclasses.replace(get_spec("dra-bnn-waste"), factory=lambda: DeployableDRABNN(SMALL),
                               input_shape=SMALL.in_shape, preprocessing=dra_bnn._rgb(16))
    recipe = get_recipe("dra-bnn").replace(
        lr=1e-8, group_lr={"alpha": 2e-8}, min_lr=3e-9, plateau_patience=1, early_stop_patience=4,
        epochs=20, batch_size=64, augment={}, val_fraction=0.1)
    real_get_spec = train_mod.get_spec
    monkeypatch.setattr(train_mod, "get_spec", lambda n: spec if n == "dra-bnn-waste" else real_get_spec(n))
    monkeypatch.setattr(train_mod, "get_recipe", lambda n: recipe)
    return recipe


def _train(out: Path, root: Path, log=lambda _: None):
    cfg = train_mod.TrainConfig(model="dra-bnn-waste", data_root=root, out_dir=out, progress=False, threads=1)
    return train_mod.train(cfg, log=log)


def test_plateau_schedule_early_stop_and_resume(tiny_waste, garbage, tmp_path):
    lines: list[str] = []
    result = _train(tmp_path / "a", garbage, lines.append)
    lrs = [float(r.split(",")[1]) for r in (tmp_path / "a" / "metrics.csv").read_text().splitlines()[1:]]
    # Epoch 1 sets the best loss; epochs 2-5 do not improve. Plateau (patience 1) halves
    # every group's rate after epochs 3 and 5; early stopping (patience 4) ends after epoch 5.
    assert lrs == pytest.approx([1e-8, 1e-8, 1e-8, 5e-9, 5e-9])
    assert result.epochs_run == 5 and any(line.startswith("early stop after epoch 5") for line in lines)
    ckpt = torch.load(result.last, weights_only=True)
    groups = {g["name"]: g["lr"] for g in ckpt["optimizer"]["param_groups"]}
    assert groups["weights"] == pytest.approx(3e-9)  # 2.5e-9 held at min_lr
    assert groups["alpha"] == pytest.approx(5e-9)  # the alpha group is scheduled too, from its own rate
    assert ckpt["schedule"]["early_stop"]["stopped"]

    # Interrupted after epoch 3 and resumed: the same schedule, stop and weights.
    class Interrupt(Exception):
        pass

    def stop_after_3(line: str) -> None:
        if line.startswith("epoch 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        _train(tmp_path / "b", garbage, stop_after_3)
    resumed = _train(tmp_path / "b", garbage)
    assert resumed.epochs_run == 2
    again = torch.load(resumed.last, weights_only=True)
    assert again["schedule"] == ckpt["schedule"] and again["epoch"] == 5
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(v, again["state_dict"][k]), k
    # A stopped run stays stopped.
    assert _train(tmp_path / "b", garbage).epochs_run == 0


# --------------------------------------------------------------------------- FINN


def test_faithful_model_build_is_refused_in_one_line(tmp_path):
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.errors import UserError

    for name in ("dra-bnn", "dra-bnn-cifar10"):
        with pytest.raises(UserError) as err:
            make_config(model=name, board="pynq-z2", out_dir=tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and "cannot become hardware" in msg and "dra-bnn-waste" in msg


def test_prelu_absorbs_into_thresholds():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.basic import qonnx_make_model

    from bnn2fpga.flows.transforms.absorb_prelu import AbsorbPReLUIntoMultiThreshold

    def graph(slope: np.ndarray) -> ModelWrapper:
        nodes = [
            helper.make_node("PRelu", ["x", "slope"], ["p"]),
            helper.make_node("MultiThreshold", ["p", "thr"], ["y"], domain="qonnx.custom_op.general",
                             out_dtype="INT4", out_bias=-8.0),
        ]
        io = {n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in "xpy"}
        g = helper.make_graph(nodes, "g", [io["x"]], [io["y"]], value_info=[io["p"]])
        model = ModelWrapper(qonnx_make_model(g))
        model.set_initializer("slope", slope.astype(np.float32))
        model.set_initializer("thr", np.tile(np.arange(-7.5, 7.5, 1.0, dtype=np.float32), (3, 1)))
        return model

    x = np.random.default_rng(0).uniform(-40, 10, (1, 3, 4, 4)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0
    for slope in (np.array([0.25]), np.array([0.0]), np.array([0.3, 0.0, 1.0]).reshape(3, 1, 1)):
        model = graph(slope)
        ref = execute_onnx(model, {"x": x})["y"]
        new = model.transform(AbsorbPReLUIntoMultiThreshold())
        assert [n.op_type for n in new.graph.node] == ["MultiThreshold"]
        np.testing.assert_array_equal(execute_onnx(new, {"x": x})["y"], ref)
    with pytest.raises(ValueError, match="negative slope"):
        graph(np.array([-0.1])).transform(AbsorbPReLUIntoMultiThreshold())


def _randomize_like_trained(model: DeployableDRABNN, seed: int) -> None:
    """Trained-looking parameters: BN gammas of both signs, PReLU slopes in [0, 0.6] (one 0), alphas in range."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                sign = torch.where(torch.rand(m.num_features, generator=gen) < 0.3, -1.0, 1.0)
                m.weight.copy_(sign * (0.5 + torch.rand(m.num_features, generator=gen)))
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
        prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
        for i, m in enumerate(prelus):
            m.weight.fill_(0.0 if i == 2 else float(torch.rand(1, generator=gen)) * 0.6)
        for p in alpha_parameters(model):
            p.fill_(float(0.1 + 1.9 * torch.rand(1, generator=gen)))


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """The reduced DRA-BNN (trained-looking weights, calibrated BN) exported and built up to the estimate."""
    from bnn2fpga.flows.config import make_config
    from bnn2fpga.flows.runner import run_build
    from bnn2fpga.quantize.export import calibrate_untrained, export_qonnx

    spec = ModelSpec(
        name="dra-bnn-waste", factory=lambda: DeployableDRABNN(SMALL), input_shape=SMALL.in_shape,
        input_dtype="UINT8", class_names=tuple(GARBAGE_CLASS_NAMES), dataset="garbage", recipe="dra-bnn",
        preprocessing=dra_bnn._rgb(16), description="reduced DRA-BNN for tests",
    )
    model = _small_model(seed=3)
    _randomize_like_trained(model, seed=3)
    calibrate_untrained(model, spec, seed=3)
    tmp = tmp_path_factory.mktemp("dra_build")
    exported = export_qonnx(model, spec, tmp / "dra.onnx")
    # One SetFolding pass at a modest target instead of the folding search: this test is about the mapping.
    cfg = make_config(onnx=exported.onnx, board="pynq-z2", out_dir=tmp / "build", until="estimate", fps=200)
    return model, exported, run_build(cfg, log=lambda m: None)


def test_small_build_maps_residuals_to_dataflow(small_build):
    import json

    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.runner import model_file

    model, exported, result = small_build
    hw = ModelWrapper(str(model_file(result.out_dir, "convert_to_hw")))
    ops = {n.op_type for n in hw.graph.node}
    assert {"DuplicateStreams", "ElementwiseAdd", "MVAU", "Thresholding", "ConvolutionInputGenerator"} <= ops
    assert not ops & {"PRelu", "Mul", "Add", "MultiThreshold", "BatchNormalization"}
    assert result.info["fit"] and result.info["fit_message"] == ""
    head = json.loads(exported.sidecar.read_text())["head"]
    alpha = model.head.alpha.item()
    fh, fw = SMALL.feature_size()
    assert head["scale"] == pytest.approx([alpha / (fh * fw)] * 12) and head["bias"] == [0.0] * 12


def test_small_build_is_bit_exact_at_every_stage(small_build):
    from bnn2fpga.flows.verify import make_inputs, verify_build

    model, _, result = small_build
    inputs = make_inputs(SMALL.in_shape, 3, result.info.get("input_quant"), real=None, seed=4)
    body = model.body.eval()
    model.set_deploy_order(True)
    with torch.no_grad():
        ref = np.stack([body(torch.from_numpy(inputs.x[i:i + 1])).numpy() for i in range(len(inputs.x))])
    model.set_deploy_order(False)
    verdict = verify_build(result, inputs, ref, log=lambda m: None, workers=1)
    stages = {s.name: s for s in verdict.stages}
    for name in ("qonnx", "finn-onnx", "tidy", "streamlined", "hw layers", "dataflow partition",
                 "specialized", "folded"):
        assert stages[name].status == "bit-exact", (name, stages[name].detail)
    assert verdict.verdict == "bit-exact"


def test_binary_bits_of_faithful_and_deployable_builds_agree():
    from bnn2fpga.quantize.registry import count_binary_weight_bits

    cfg = DRABNNConfig(in_shape=(3, 32, 32), num_classes=10, widths=(8, 16), blocks=(1, 1))
    faithful, deployable = dra_bnn.DRABNN(cfg), DeployableDRABNN(cfg)
    # The faithful model's sign layers are plain PyTorch (its own count); the deployable ones are Brevitas 1-bit.
    assert count_binary_weight_bits(faithful) == count_binary_weight_bits(deployable) > 0


def test_small_build_has_every_layer_in_rtl(small_build):
    """No HLS layer by default: the bitstream needs Vivado alone (pools, forks, joins and adds are ours)."""
    from build_checks import hls_layers

    _, _, result = small_build
    assert hls_layers(result.out_dir) == []
