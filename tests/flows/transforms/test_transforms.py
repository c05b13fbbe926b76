"""Tests for our graph transforms: the input-quantizer hoist and the bipolar-pad absorption.

The reference for every graph is the Brevitas model it was exported from; FINN's own
conversion is run to show the rounding trap that the hoist exists to avoid.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from bnn2fpga.hw import finn_env

finn_env.prepare()

from brevitas.core.scaling import ScalingImplType  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.nn import QuantIdentity, QuantLinear  # noqa: E402
from brevitas.quant.scaled_int import Int8ActPerTensorFloat  # noqa: E402
from onnx import helper  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.basic import get_by_name  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from bnn2fpga.flows.transforms.absorb_bipolar_pad import AbsorbBipolarPadIntoConv  # noqa: E402
from bnn2fpga.flows.transforms.hoist_input_quant import HoistInputQuantToHost, InputQuantSpec  # noqa: E402
from bnn2fpga.quantize import layers  # noqa: E402


# Small tensors: one torch thread is faster, and much faster when the CPUs are shared.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    with finn_env.exact_execution():
        out = execute_onnx(model, {model.graph.input[0].name: np.asarray(x, np.float32)})
    return out[model.graph.output[0].name]


def _spec(scale=1.0, zp=0.0, bits=8, signed=False, narrow=False, rounding="ROUND") -> InputQuantSpec:
    return InputQuantSpec(scale=scale, zero_point=zp, bits=bits, signed=signed, narrow=narrow, rounding=rounding)


# --- InputQuantSpec.quantize ----------------------------------------------------------------


def test_quantize_rounds_half_to_even():
    x = [0.5, 1.5, 2.5, 3.5, 4.5, 0.49, 0.51, 2.4999, 7.0]
    assert _spec().quantize(x).tolist() == [0, 2, 2, 4, 4, 0, 1, 2, 7]
    neg = [-0.5, -1.5, -2.5, -3.5, -2.51]
    assert _spec(signed=True).quantize(neg).tolist() == [0, -2, -2, -4, -3]


def test_quantize_clips_uint8():
    assert _spec().quantize([-1.0, -0.4, 254.6, 255.0, 255.5, 1000.0]).tolist() == [0, 0, 255, 255, 255, 255]


def test_quantize_clips_int8():
    q = _spec(signed=True).quantize([-1000.0, -128.0, -128.6, 126.5, 127.0, 127.6, 400.0])
    assert q.tolist() == [-128, -128, -128, 126, 127, 127, 127]


def test_quantize_narrow_range_signed():
    q = _spec(signed=True, narrow=True).quantize([-200.0, -128.0, -127.0, -126.5, 127.0, 200.0])
    assert q.tolist() == [-127, -127, -127, -126, 127, 127]


def test_quantize_narrow_range_unsigned():
    assert _spec(narrow=True).quantize([255.0, 254.0, 300.0, 0.0]).tolist() == [254, 254, 254, 0]


def test_quantize_scale_and_zero_point():
    # q = clip(round(x / 0.25 + 10)): 1.0 -> 14, -2.5 -> 0, 0.125 -> round(10.5) = 10,
    # 0.375 -> round(11.5) = 12, 70 -> 290 -> 255, -5 -> -10 -> 0
    q = _spec(scale=0.25, zp=10.0).quantize([1.0, -2.5, 0.125, 0.375, 70.0, -5.0])
    assert q.tolist() == [14, 0, 10, 12, 255, 0]
    # signed 4 bit, scale 0.5, zp -1: x=0.75 -> 1.5 - 1 = 0.5 -> 0; x=3 -> 5; x=10 -> 19 -> 7; x=-10 -> -21 -> -8
    q4 = _spec(scale=0.5, zp=-1.0, bits=4, signed=True).quantize([0.75, 3.0, 10.0, -10.0])
    assert q4.tolist() == [0, 5, 7, -8]


@pytest.mark.parametrize(
    "mode, expected",
    [
        # x:          1.5, -1.5, 2.5, -2.5, 2.2, -2.7
        ("ROUND", [2, -2, 2, -2, 2, -3]),
        ("HALF_EVEN", [2, -2, 2, -2, 2, -3]),
        ("FLOOR", [1, -2, 2, -3, 2, -3]),
        ("CEIL", [2, -1, 3, -2, 3, -2]),
        ("DOWN", [1, -1, 2, -2, 2, -2]),  # toward zero
        ("UP", [2, -2, 3, -3, 3, -3]),  # away from zero
        ("HALF_UP", [2, -2, 3, -3, 2, -3]),  # ties away from zero
        ("HALF_DOWN", [1, -1, 2, -2, 2, -3]),  # ties toward zero
    ],
)
def test_quantize_rounding_modes(mode, expected):
    x = [1.5, -1.5, 2.5, -2.5, 2.2, -2.7]
    assert _spec(signed=True, rounding=mode).quantize(x).tolist() == expected


def test_quantize_unknown_rounding_mode_is_rejected():
    with pytest.raises(ValueError):
        _spec(rounding="STOCHASTIC").quantize([0.5])


def test_quantize_returns_float32_integers():
    q = _spec(scale=3.7 / 128, signed=True).quantize(np.linspace(-5, 5, 101))
    assert q.dtype == np.float32
    assert np.array_equal(q, np.round(q))


def test_spec_datatype_and_dict():
    assert _spec().datatype == "UINT8"
    assert _spec(bits=4, signed=True).datatype == "INT4"
    d = _spec(scale=0.5).to_dict()
    assert d == {"scale": 0.5, "zero_point": 0.0, "bits": 8, "signed": False, "narrow": False, "rounding": "ROUND"}
    assert InputQuantSpec(**d) == _spec(scale=0.5)


# --- HoistInputQuantToHost ------------------------------------------------------------------

SCALE_CONST = 3.7


class Int8Const(Int8ActPerTensorFloat):
    """Signed 8-bit input with a fixed scale that is not a power of two."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_const = SCALE_CONST
    min_val = -SCALE_CONST
    max_val = SCALE_CONST


# Brevitas' signed, non-narrow 8-bit scale: the constant over 2**7.
EXPECTED_SCALE = float(np.float32(SCALE_CONST) / np.float32(128))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(
        QuantIdentity(act_quant=Int8Const, return_quant_tensor=False),
        QuantLinear(16, 8, weight_quant=layers.BinaryWeight, bias=False),
        QuantIdentity(act_quant=layers.BinaryAct, return_quant_tensor=False),
        QuantLinear(8, 4, weight_quant=layers.BinaryWeight, bias=False),
    )
    with torch.no_grad():
        # neuron 0 sees +1 on the first eight inputs and -1 on the last eight (see trap test)
        model[1].weight[0] = torch.tensor([0.5] * 8 + [-0.5] * 8)
    model.eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_qonnx(model, input_t=torch.zeros(1, 16), export_path=str(path))
    return model, path


def _load(path) -> ModelWrapper:
    return cleanup_model(ModelWrapper(str(path)))


@pytest.fixture(scope="module")
def hoisted(tiny):
    _, path = tiny
    transform = HoistInputQuantToHost()
    model = _load(path).transform(transform)
    return model, transform


def _tie_inputs(n: int, seed: int) -> np.ndarray:
    """Inputs exactly on rounding ties of the input quantizer: x / scale == k + 0.5 in float32."""
    rng = np.random.default_rng(seed)
    scale = np.float32(EXPECTED_SCALE)
    k = rng.integers(-140, 140, size=(4 * n, 16))
    x = ((k + 0.5) * np.float64(scale)).astype(np.float32)
    exact = np.all(x / scale == (k + 0.5).astype(np.float32), axis=1)
    assert exact.sum() >= n
    return x[exact][:n]


def _crafted_tie() -> np.ndarray:
    """Ties on which half-up and half-to-even put neuron 0 on opposite sides of zero.

    Neuron 0 has weight +1 on inputs 0..7 and -1 on inputs 8..15. Inputs 0..7 sit on the
    tie -0.5 (both rules give 0), inputs 8..15 on the tie +0.5 (half-to-even gives 0,
    half-up gives 1). Brevitas' accumulator of neuron 0 is exactly 0 -> sign +1;
    rounding half up gives -8 * scale -> sign -1.
    """
    scale = np.float32(EXPECTED_SCALE)
    k = np.array([-0.5] * 8 + [0.5] * 8)
    x = (k * np.float64(scale)).astype(np.float32)[None, :]
    assert np.array_equal(x / scale, k.astype(np.float32)[None, :])
    return x


def test_hoist_removes_the_input_quant(tiny, hoisted):
    _, path = tiny
    before = _load(path)
    assert before.graph.node[0].op_type == "Quant"
    model, transform = hoisted
    ops = [n.op_type for n in model.graph.node]
    assert ops[0] != "Quant"
    assert "Quant" not in ops  # the only multi-bit Quant was the input's
    assert ops[0] == "Mul"  # dequantization by the non-unit scale
    assert ops.count("BipolarQuant") == len(before.get_nodes_by_op_type("BipolarQuant"))
    assert model.get_tensor_datatype(model.graph.input[0].name) == DataType["INT8"]
    spec = transform.spec
    assert spec.bits == 8 and spec.signed is True and spec.narrow is False
    assert spec.zero_point == 0.0 and spec.rounding == "ROUND"
    assert spec.scale == EXPECTED_SCALE
    assert spec.datatype == "INT8"
    # agrees with the Brevitas quantizer's own scale
    assert spec.scale == pytest.approx(float(tiny[0][0].act_quant.scale()), rel=1e-7)


def test_hoist_is_a_no_op_without_input_quant(hoisted):
    model, _ = hoisted
    again = HoistInputQuantToHost()
    model2 = model.transform(again)
    assert again.spec is None
    assert [n.op_type for n in model2.graph.node] == [n.op_type for n in model.graph.node]


def test_hoisted_graph_is_bit_exact_on_ties(tiny, hoisted):
    brevitas_model, path = tiny
    original = _load(path)
    model, transform = hoisted
    xs = np.concatenate([_tie_inputs(24, seed=0), _crafted_tie()])
    for x in xs:
        x = x[None, :]
        with torch.no_grad():
            ref = brevitas_model(torch.from_numpy(x)).numpy()
        q = transform.spec.quantize(x)
        assert np.array_equal(q, np.round(q)) and q.min() >= -128 and q.max() <= 127
        assert np.array_equal(_run(original, x), ref)
        assert np.array_equal(_run(model, q), ref)


def test_hoist_keeps_clipping_on_the_host(tiny, hoisted):
    """Inputs beyond the int8 range are clipped by spec.quantize, as the Quant node did."""
    brevitas_model, path = tiny
    model, transform = hoisted
    x = np.linspace(-10, 10, 16, dtype=np.float32)[None, :]  # +-10 is far beyond 127 * scale
    q = transform.spec.quantize(x)
    assert q[0, 0] == -128 and q[0, -1] == 127
    with torch.no_grad():
        ref = brevitas_model(torch.from_numpy(x)).numpy()
    assert np.array_equal(_run(model, q), ref)
    assert np.array_equal(_run(_load(path), x), ref)


def test_finn_conversion_rounds_ties_differently(tiny, hoisted):
    """The trap: FINN's MultiThreshold rounds input ties up, Brevitas rounds them to even."""
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

    brevitas_model, path = tiny
    finn_model = _load(path).transform(ConvertQONNXtoFINN())
    assert finn_model.graph.node[0].op_type == "MultiThreshold"
    hoisted_model, transform = hoisted
    xs = np.concatenate([_crafted_tie(), _tie_inputs(16, seed=1)])
    differs = []
    for x in xs:
        x = x[None, :]
        with torch.no_grad():
            ref = brevitas_model(torch.from_numpy(x)).numpy()
        differs.append(not np.array_equal(_run(finn_model, x), ref))
        assert np.array_equal(_run(hoisted_model, transform.spec.quantize(x)), ref)
    assert differs[0]  # the crafted tie flips neuron 0
    # off ties FINN agrees: the difference really comes from the rounding of ties
    off = (np.round(xs / np.float32(EXPECTED_SCALE)) * np.float32(EXPECTED_SCALE)).astype(np.float32)
    for x in off[:4]:
        x = x[None, :]
        with torch.no_grad():
            ref = brevitas_model(torch.from_numpy(x)).numpy()
        assert np.array_equal(_run(finn_model, x), ref)


def test_hoist_with_zero_point_and_unit_scale():
    """A hand-built Quant (scale 1, zero point 3, UINT4): Sub is inserted, no Mul."""
    from onnx import TensorProto

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], domain="qonnx.custom_op.general",
                         signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Relu", ["q"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [inp], [out])
    model = ModelWrapper(helper.make_model(graph))
    model.set_initializer("s", np.array(1.0, np.float32))
    model.set_initializer("z", np.array(3.0, np.float32))
    model.set_initializer("b", np.array(4.0, np.float32))
    model = cleanup_model(model)
    x = np.array([[-5.0, 2.5, 7.5, 40.0]], np.float32)
    # by hand: round_half_even(x + 3) clipped to 0..15 = [0, 6, 10, 15]; minus 3; relu
    expected = np.array([[0.0, 3.0, 7.0, 12.0]], np.float32)
    assert np.array_equal(_run(model, x), expected)
    transform = HoistInputQuantToHost()
    hoisted = model.transform(transform)
    assert [n.op_type for n in hoisted.graph.node] == ["Sub", "Relu"]
    assert hoisted.get_tensor_datatype(hoisted.graph.input[0].name) == DataType["UINT4"]
    q = transform.spec.quantize(x)
    assert q.tolist() == [[0.0, 6.0, 10.0, 15.0]]
    assert np.array_equal(_run(hoisted, q), expected)


@pytest.mark.parametrize("mode", ["HALF_UP", "HALF_EVEN", "FLOOR"])
def test_hoist_with_other_qonnx_rounding_modes(tiny, mode):
    """Whatever valid QONNX rounding the input Quant has, the host must reproduce it."""
    _, path = tiny
    model = _load(path)
    get_by_name(model.graph.node[0].attribute, "rounding_mode").s = mode.encode()
    x = np.concatenate([_tie_inputs(4, seed=2), _crafted_tie()])
    refs = [_run(model, xi[None, :]) for xi in x]  # QONNX's own execution of that mode
    transform = HoistInputQuantToHost()
    hoisted = model.transform(transform)
    assert transform.spec is not None and transform.spec.rounding == mode
    assert "Quant" not in [n.op_type for n in hoisted.graph.node]
    for xi, ref in zip(x, refs):
        assert np.array_equal(_run(hoisted, transform.spec.quantize(xi[None, :])), ref)
    if mode == "HALF_UP":  # not vacuous: on the crafted tie this mode changes the result
        assert not np.array_equal(refs[-1], _run(_load(path), x[-1:]))


# --- AbsorbBipolarPadIntoConv ---------------------------------------------------------------


class PadNet(nn.Module):
    """pixels -> conv(pad 1) -> BN -> sign -> pad -1 -> binary conv: the CBCNN pattern in small."""

    def __init__(self):
        super().__init__()
        self.inp = layers.pixel_input()
        self.conv1 = layers.binary_conv(1, 4, 3, padding=1)
        self.bn = layers.batch_norm(4)
        self.act = layers.binary_act()
        self.conv2 = layers.binary_conv(4, 4, 3)

    def forward(self, x):
        y = self.act(self.bn(self.conv1(self.inp(x))))
        return self.conv2(layers.pad_binary(y, 1))


@pytest.fixture(scope="module")
def padnet(tmp_path_factory):
    torch.manual_seed(0)
    net = PadNet()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-200, 200)
        net.bn.running_var.uniform_(100, 10000)
        net.bn.weight.uniform_(0.1, 2.0)
        net.bn.bias.uniform_(-1, 1)
    net.eval()
    tmp = tmp_path_factory.mktemp("padnet")
    path = tmp / "pad.onnx"
    export_qonnx(net, input_t=torch.zeros(1, 1, 6, 6), export_path=str(path))
    from finn.builder.build_dataflow_config import DataflowBuildConfig

    cfg = DataflowBuildConfig(
        output_dir=str(tmp / "finn"), synth_clk_period_ns=10, fpga_part="xc7z020clg400-1", verify_steps=[]
    )
    steps = finn_env.finn_steps().build_dataflow_step_lookup
    model = _load(path).transform(HoistInputQuantToHost())
    model = steps["step_qonnx_to_finn"](model, cfg)
    model = steps["step_tidy_up"](model, cfg)
    return net, model, cfg, steps


def _copy(model: ModelWrapper) -> ModelWrapper:
    return ModelWrapper(model.model.SerializeToString())


def _convs(model):
    return model.get_nodes_by_op_type("Conv")


def _pads_attr(conv):
    a = get_by_name(conv.attribute, "pads")
    return list(a.ints) if a is not None else None


def test_tidy_graph_has_the_bipolar_pad(padnet):
    _, model, _, _ = padnet
    pads = model.get_nodes_by_op_type("Pad")
    assert len(pads) == 1
    pad = pads[0]
    assert model.get_tensor_datatype(pad.input[0]) == DataType["BIPOLAR"]
    assert float(np.asarray(model.get_initializer(pad.input[2])).reshape(-1)[0]) == -1.0
    assert model.find_consumer(pad.output[0]).op_type == "Conv"


def test_absorb_bipolar_pad_into_conv(padnet):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    pad = model.get_nodes_by_op_type("Pad")[0]
    pad_in = pad.input[0]
    second = model.find_consumer(pad.output[0])
    assert _pads_attr(second) in (None, [0, 0, 0, 0])
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert model.get_nodes_by_op_type("Pad") == []
    first, second = _convs(model)
    assert _pads_attr(second) == [1, 1, 1, 1]
    assert second.input[0] == pad_in  # the conv reads the bipolar map directly
    assert _pads_attr(first) == [1, 1, 1, 1]  # the pixel conv's own padding is untouched
    assert len(model.graph.node) == len(tidy.graph.node) - 1


def test_absorbed_graph_streamlines_to_brevitas_bit_exact(padnet):
    """After FINN's streamlining (XNOR: bit 0 = -1) the conv's zero padding is -1 padding."""
    net, tidy, cfg, steps = padnet
    model = _copy(tidy).transform(AbsorbBipolarPadIntoConv())
    model = steps["step_streamline"](model, cfg)
    ops = [n.op_type for n in model.graph.node]
    assert "XnorPopcountMatMul" in ops and "Pad" not in ops
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.integers(0, 256, (1, 1, 6, 6)).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        assert np.array_equal(_run(model, x), ref)
    # not vacuous: the borders of the second conv differ from a zero-padded conv
    with torch.no_grad():
        y = net.act(net.bn(net.conv1(net.inp(torch.from_numpy(x)))))
        zero_padded = torch.nn.functional.conv2d(y, net.conv2.quant_weight().value, padding=1)
    assert not np.array_equal(zero_padded.numpy(), ref)


def test_absorb_adds_pads_attribute_when_conv_has_none(padnet):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    second = _convs(model)[1]
    attr = get_by_name(second.attribute, "pads")
    if attr is not None:
        second.attribute.remove(attr)
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert model.get_nodes_by_op_type("Pad") == []
    assert _pads_attr(_convs(model)[1]) == [1, 1, 1, 1]


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_absorb_ignores_pad_value_other_than_minus_one(padnet, value):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    pad = model.get_nodes_by_op_type("Pad")[0]
    model.set_initializer(pad.input[2], np.asarray(value, dtype=np.float32))
    before = model.model.SerializeToString()
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert len(model.get_nodes_by_op_type("Pad")) == 1
    assert _pads_attr(_convs(model)[1]) in (None, [0, 0, 0, 0])
    assert model.model.SerializeToString() == before


@pytest.mark.parametrize("dtype", ["INT8", "FLOAT32", "BINARY"])
def test_absorb_ignores_non_bipolar_input(padnet, dtype):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    pad = model.get_nodes_by_op_type("Pad")[0]
    model.set_tensor_datatype(pad.input[0], DataType[dtype])
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert len(model.get_nodes_by_op_type("Pad")) == 1
    assert _pads_attr(_convs(model)[1]) in (None, [0, 0, 0, 0])


def test_absorb_ignores_non_bipolar_weights(padnet):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    second = _convs(model)[1]
    model.set_tensor_datatype(second.input[1], DataType["INT2"])
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert len(model.get_nodes_by_op_type("Pad")) == 1


def test_absorb_ignores_padding_of_batch_or_channels(padnet):
    _, tidy, _, _ = padnet
    model = _copy(tidy)
    pad = model.get_nodes_by_op_type("Pad")[0]
    model.set_initializer(pad.input[1], np.array([0, 1, 1, 1, 0, 0, 1, 1], dtype=np.int64))
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert len(model.get_nodes_by_op_type("Pad")) == 1


def test_absorb_asymmetric_pads_keep_onnx_order(padnet):
    """ONNX Pad order (N,C,H,W begins, then ends) maps to Conv's (H,W begins, then ends)."""
    _, tidy, cfg, steps = padnet
    model = _copy(tidy)
    pad = model.get_nodes_by_op_type("Pad")[0]
    # H: 2 before, 0 after; W: 1 before, 1 after (shapes unchanged: 8x8 into the 3x3 conv)
    model.set_initializer(pad.input[1], np.array([0, 0, 2, 1, 0, 0, 0, 1], dtype=np.int64))
    reference = _copy(model)  # explicit Pad(-1): QONNX executes it literally
    model = model.transform(AbsorbBipolarPadIntoConv())
    assert model.get_nodes_by_op_type("Pad") == []
    assert _pads_attr(_convs(model)[1]) == [2, 1, 0, 1]
    streamlined = steps["step_streamline"](model, cfg)
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.integers(0, 256, (1, 1, 6, 6)).astype(np.float32)
        ref = _run(reference, x)
        assert ref.shape == (1, 4, 6, 6)
        assert np.array_equal(_run(streamlined, x), ref)


def test_without_absorption_finn_streamlining_is_wrong(padnet):
    """Why the transform exists: FINN keeps the literal -1 Pad after the XNOR re-encoding."""
    net, tidy, cfg, steps = padnet
    streamlined = steps["step_streamline"](_copy(tidy), cfg)
    assert "Pad" in [n.op_type for n in streamlined.graph.node]
    rng = np.random.default_rng(0)
    wrong = 0
    for _ in range(3):
        x = rng.integers(0, 256, (1, 1, 6, 6)).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        wrong += not np.array_equal(_run(streamlined, x), ref)
    assert wrong > 0
