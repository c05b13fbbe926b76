"""The build steps: plain named functions ``step(model, ctx) -> model``, FINN's where they
serve and ours where they do not. Their order is ``STEPS``; the runner saves each result.
"""
from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bnn2fpga.flows import build_dir, ecp5, ops
from bnn2fpga.hw import finn_env
from bnn2fpga.flows.config import BuildConfig, file_digest
from bnn2fpga.errors import DoesNotFit, ToolMissing, UserError

# Ops that FINN can streamline away or map to hardware. Anything else is reported at
# the first step, naming the node, instead of failing deep inside FINN.
SUPPORTED_OPS = frozenset(
    "Quant BipolarQuant BinaryQuant Trunc MultiThreshold Conv MatMul Gemm BatchNormalization "
    "Mul Add Sub Div MaxPool AveragePool GlobalAveragePool Reshape Flatten Transpose Pad Relu "
    "Concat Split Identity Squeeze Unsqueeze TopK QuantAvgPool2d ReduceMax ReduceMean Clip Neg "
    "Upsample Resize PRelu".split()
)


@dataclass
class Context:
    """What a step may read besides the model: the config, FINN's config, the folders."""

    cfg: BuildConfig
    finn_cfg: object
    out_dir: Path
    info: dict = field(default_factory=dict)  # persisted in the build state (e.g. input spec)

    @property
    def report_dir(self) -> Path:
        """Where reports go (FINN's own and ours)."""
        return build_dir.report_dir(self.out_dir)


def _no_inputs(cfg: BuildConfig) -> str:
    return ""


@dataclass(frozen=True)
class Step:
    """A named build step: its function, what its key covers, the tools it needs.

    ``key_inputs`` returns what besides the previous step's output decides this step's
    result (the runner chains it into the step's key, so a change re-runs the step and
    everything after it).
    """

    name: str
    fn: Callable
    needs: tuple[str, ...] = ()
    doc: str = ""
    key_inputs: Callable[[BuildConfig], str] = _no_inputs
    #: The verification ladder's stage that executes this step's saved model ("" for none).
    ladder: str = ""
    #: That model runs inside the dataflow parent graph (it holds only the accelerator part).
    in_parent: bool = False


def make_finn_config(cfg: BuildConfig, out_dir: Path):
    """FINN's DataflowBuildConfig for our BuildConfig."""
    ops.prepare()
    from finn.builder.build_dataflow_config import (
        DataflowBuildConfig,
        DataflowOutputType,
        ShellFlowType,
    )

    return DataflowBuildConfig(
        output_dir=str(out_dir / "finn"),
        synth_clk_period_ns=cfg.board.clock_period_ns,
        fpga_part=cfg.board.part,
        board=cfg.board.finn_board,
        shell_flow_type=ShellFlowType.VIVADO_ZYNQ,
        target_fps=None,
        generate_outputs=[
            DataflowOutputType.ESTIMATE_REPORTS,
            DataflowOutputType.BITFILE,
            DataflowOutputType.PYNQ_DRIVER,
            DataflowOutputType.DEPLOYMENT_PACKAGE,
        ],
        save_intermediate_models=True,
        verify_steps=[],
    )


def _finn(name: str) -> Callable:
    return finn_env.finn_steps().build_dataflow_step_lookup[name]


# --- Vivado-free steps ---------------------------------------------------------------


def step_export(model, ctx: Context):
    """QONNX from the zoo model (checkpoint or calibrated random weights), or the user's file."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    from bnn2fpga.flows.config import read_sidecar

    src = ctx.cfg.source
    ctx.info["model"], ctx.info["board"] = src.model or str(src.onnx), ctx.cfg.board.name
    dst = build_dir.qonnx_model(ctx.out_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.model is not None:
        from bnn2fpga.quantize.export import export_model

        exported = export_model(src.model, dst, src.ckpt)
        ctx.info["sidecar"] = read_sidecar(exported.sidecar)
        return ModelWrapper(str(dst))
    # The user's file is read whole (external weight files included) before anything is
    # written, so an input that lives inside the build folder survives its own export.
    sidecar = read_sidecar(src.sidecar) if src.sidecar else {}
    try:
        proto = onnx.load(str(src.onnx))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError & co. for a corrupt file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read ONNX file {src.onnx}: {msg}") from None
    _check_class_names(proto, sidecar, src.sidecar)
    # Saving embeds the weights, so the build folder is self-contained.
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(dst)
    ctx.info["sidecar"] = sidecar
    return ModelWrapper(str(dst))


def _check_class_names(proto, sidecar: dict, path) -> None:
    """A sidecar's class names must match the network's output size (when it is a score vector)."""
    names = sidecar.get("class_names")
    dims = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] if proto.graph.output else []
    if names is None or len(dims) != 2 or dims[1] <= 1:
        return
    if len(names) != dims[1]:
        raise UserError(f"sidecar {path}: 'class_names' has {len(names)} names but the network has "
                        f"{dims[1]} outputs")


def _describe_float_op(op: dict) -> str:
    if op["op"] == "Sign":
        return f"Sign (BipolarQuant, scale {op['scale']:g})"
    return f"{op['op']} {op['value']:g}"


def _declare_input(model, ctx: Context):
    """The user's --input-scale / --input-dtype: the float input is scale * (integer code)."""
    import numpy as np
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType

    from bnn2fpga.quantize.input_quant import InputQuantSpec

    decl = ctx.cfg.input_decl
    dt = DataType[decl.dtype]
    spec = InputQuantSpec(scale=decl.scale, zero_point=0.0, bits=dt.bitwidth(), signed=dt.signed(), narrow=False)
    inp = model.graph.input[0].name
    if decl.scale != 1.0:
        # The graph keeps computing on float values: x = scale * q, as a Mul streamlining absorbs.
        const, dst = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
        model.set_initializer(const, np.asarray(decl.scale, dtype=np.float32))
        for node in model.find_consumers(inp) or []:
            for i, name in enumerate(node.input):
                if name == inp:
                    node.input[i] = dst
        model.graph.value_info.append(helper.make_tensor_value_info(dst, TensorProto.FLOAT,
                                                                    model.get_tensor_shape(inp)))
        model.graph.node.insert(0, helper.make_node("Mul", [inp, const], [dst]))
    model.set_tensor_datatype(inp, dt)
    return model, spec


def _check_trunc_rounding(model) -> None:
    """Refuse a Trunc that still does not floor, naming the node and the Brevitas fix.

    FINN's average pool (QuantAvgPool2d) divides by shifting, i.e. floors, and its converter
    fails with a bare ValueError on any other mode. RoundingTruncToThresholds rewrites the
    rounding Trunc of an average pool (TruncAvgPool2d's default); one it could not rewrite
    (another producer, a non-zero zero point, Trunc v1) ends here.
    """
    from qonnx.custom_op.registry import getCustomOp

    for n in model.get_nodes_by_op_type("Trunc"):
        mode = getCustomOp(n).get_nodeattr("rounding_mode").upper()
        if mode != "FLOOR":
            prod = model.find_producer(n.input[0])
            after = f", after '{prod.name}' ({prod.op_type})" if prod is not None else ""
            raise UserError(
                f"node '{n.name}' (op Trunc{after}) truncates with rounding_mode {mode}: FINN truncates only "
                "by a flooring shift, and a rounding Trunc is mapped only right after an AveragePool with "
                "constant scales and zero point 0; truncate by flooring in the Brevitas model "
                "(trunc_quant=TruncTo8bit, from brevitas.quant import TruncTo8bit) or use TruncAvgPool2d")


def step_qonnx_to_finn(model, ctx: Context):
    """Clean up, move the input pre-processing and quantizer to the host, check ops, convert to FINN-ONNX."""
    from qonnx.core.datatype import DataType

    from bnn2fpga.flows.fast_apply import Applier, cleanup_model, finn_step_qonnx_to_finn
    from bnn2fpga.flows.transforms.explicit_conv_kernel_shape import ExplicitConvKernelShape
    from bnn2fpga.flows.transforms.fold_quant_weights import FoldAllQuantWeights
    from bnn2fpga.flows.transforms.hoist_input_quant import HoistInputQuantToHost
    from bnn2fpga.flows.transforms.rounding_trunc_to_thresholds import RoundingTruncToThresholds

    # One applier for the step: no clean-up of a graph that is already clean, and the
    # weights folded in one pass (issue #19).
    a = Applier()
    model = a.transform(copy.deepcopy(model), ExplicitConvKernelShape())  # in place, on a copy
    model = cleanup_model(model, a)
    model = a.transform(model, RoundingTruncToThresholds())
    unsupported = [n for n in model.graph.node if n.op_type not in SUPPORTED_OPS]
    if unsupported:
        n = unsupported[0]
        raise UserError(
            f"node '{n.name or '?'}' (op {n.op_type}) cannot be mapped to hardware by FINN: no FINN layer or "
            f"streamlining rule handles {n.op_type} ({len(unsupported)} unsupported node(s): "
            f"{', '.join(sorted({m.op_type for m in unsupported}))}); replace it in the Brevitas model by "
            "quantized layers FINN maps (QuantConv2d/QuantLinear, BatchNorm, QuantIdentity/QuantReLU, MaxPool2d, "
            "TruncAvgPool2d) or move it out of the exported module"
        )
    _check_trunc_rounding(model)
    inp = model.graph.input[0].name
    declared = ctx.cfg.input_decl
    hoist = HoistInputQuantToHost()
    if declared is None:
        model = a.transform(model, hoist)
    spec = hoist.spec
    if declared is not None:
        if model.get_tensor_datatype(inp) != DataType["FLOAT32"] or any(
                n.op_type in ("Quant", "BipolarQuant") for n in model.find_consumers(inp) or []):
            raise UserError("--input-scale/--input-dtype declare the input of a network without an input "
                            "quantizer, but this network quantizes its input itself; drop the options")
        model, spec = _declare_input(model, ctx)
        a.forget()
    elif spec is None and not hoist.bipolar and model.get_tensor_datatype(inp) == DataType["FLOAT32"]:
        first = (model.find_consumers(inp) or [None])[0]
        where = f" (it goes straight into node '{first.name}' ({first.op_type}))" if first is not None else ""
        raise UserError(
            f"the network's input '{inp}' is float and has no input quantizer{where}, so the accelerator "
            "cannot know its integer format; either add an input quantizer to the Brevitas model "
            "(e.g. QuantIdentity(bit_width=8) as its first layer, after any x/255 or 2x-1) or declare "
            "the integer format the float input comes from: --input-scale 1/255 --input-dtype UINT8 "
            "(x = scale * q, q in the data type's range)"
        )
    ctx.info["input_quant"] = spec.to_dict() if spec else None
    ctx.info["input_float_ops"] = list(hoist.float_ops)
    ctx.info["host_input"] = [_describe_float_op(op) for op in hoist.float_ops] + (
        [f"Quant ({spec.datatype}, scale {spec.scale:g}{', zero point %g' % spec.zero_point if spec.zero_point else ''}"
         f", {spec.rounding})"] if spec else [])
    # FINN's step_qonnx_to_finn, same result (issue #19).
    return finn_step_qonnx_to_finn(model, ctx.finn_cfg, a, fold_weights=FoldAllQuantWeights)


def step_tidy_up(model, ctx: Context):
    """FINN's tidy-up: shapes, datatypes, constant folding, readable names."""
    from bnn2fpga.flows.fast_apply import finn_step_tidy_up

    return finn_step_tidy_up(copy.deepcopy(model), ctx.finn_cfg)  # FINN's step_tidy_up, same result (issue #19)


def _pre_streamline() -> list:
    # Our transformations that must run right before FINN's streamlining, in order. A
    # model family that needs graph surgery FINN lacks adds its transformation here.
    from bnn2fpga.flows.transforms.absorb_bipolar_pad import AbsorbBipolarPadIntoConv
    from bnn2fpga.flows.transforms.absorb_threshold_chains import AbsorbThresholdChains
    from bnn2fpga.flows.transforms.channel_shuffle_to_permute import ChannelShuffleToPermute
    from bnn2fpga.flows.transforms.explicit_split_sizes import ExplicitSplitSizes
    from bnn2fpga.flows.transforms.infer_split_datatypes import InferSplitDataTypes
    from bnn2fpga.flows.transforms.merge_identical_splits import MergeIdenticalSplits
    from bnn2fpga.flows.transforms.split_before_thresholds import SplitBeforeThresholds

    return [ExplicitSplitSizes, ChannelShuffleToPermute, InferSplitDataTypes, AbsorbThresholdChains, SplitBeforeThresholds,
            MergeIdenticalSplits, AbsorbBipolarPadIntoConv]


def _post_streamline() -> list:
    # Our transformations that run after FINN's streamlining, before hardware conversion.
    # RoundAndClipThresholds last: finn-plus' Streamline no longer rounds and clips thresholds
    # (upstream FINN's did). Its minimize_bit_width step does, but only after MinimizeWeightBitWidth,
    # which asserts on a standalone Thresholding whose thresholds lie below an unsigned input's
    # range (a signed re-quantizer after a QuantReLU and a pool). On integer inputs ceil-and-clip
    # is exact: x >= t <=> x >= ceil(t), and thresholds outside [min, max + 1] count the same.
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    from bnn2fpga.flows.transforms.global_pool_to_acc_pool import GlobalPoolToAccPool
    from bnn2fpga.flows.transforms.infer_split_datatypes import InferSplitDataTypes
    from bnn2fpga.flows.transforms.streamline_layouts import StreamlineLayouts
    from bnn2fpga.flows.transforms.streamline_residual import StreamlineResiduals

    return [InferSplitDataTypes, StreamlineResiduals, StreamlineLayouts, GlobalPoolToAccPool, InferSplitDataTypes,
            RoundAndClipThresholds]


def step_streamline(model, ctx: Context):
    """Our graph fixes, FINN's streamlining into integer thresholds, then our clean-ups."""
    from bnn2fpga.flows.fast_apply import Applier, finn_step_streamline

    a = Applier()  # no clean-up of a graph a transformation left unchanged (issue #19)
    model = copy.deepcopy(model)  # the applier works in place; the caller's model stays as it was
    for transform in _pre_streamline():
        model = a.transform(model, transform())
    # FINN's step_streamline, same result, without its ~600 clean-ups of unchanged graphs (issue #19).
    model = finn_step_streamline(model, ctx.finn_cfg, a)
    a.forget()  # finn_step_streamline works on a copy
    for transform in _post_streamline():
        model = a.transform(model, transform())
    return model


def step_convert_to_hw(model, ctx: Context):
    """FINN: map nodes to hardware layers; then ours (channel permutations)."""
    from bnn2fpga.flows.transforms.detach_host_head import DetachHostHead, reattach
    from bnn2fpga.flows.transforms.detach_input_layout import DetachInputLayout, reattach_input
    from bnn2fpga.flows.transforms.infer_channel_permute_layer import InferChannelPermuteLayer

    # The float tail after the last integer layer runs on the host: cut off before FINN's
    # conversion (which would make float ElementwiseMul/Add layers of it), put back after.
    head = DetachHostHead()
    model = model.transform(head)
    ctx.info["host_head"] = ({"ops": [n.op_type for n in head.nodes],
                              "gain": None if head.gain is None else [float(v) for v in head.gain],
                              "offset": None if head.offset is None else [float(v) for v in head.offset]}
                             if head.nodes else None)
    # Likewise a flatten right at the integer input is a free reshape on the host.
    layout = DetachInputLayout()
    model = model.transform(layout)
    model = _finn("step_convert_to_hw")(model, ctx.finn_cfg)
    model = model.transform(InferChannelPermuteLayer())
    model = _finn("step_minimize_bit_width_initial")(model, ctx.finn_cfg)
    return reattach_input(reattach(model, head), layout)


def _neighbours(model, node) -> str:
    prod = model.find_producer(node.input[0]) if node.input else None
    cons = (model.find_consumers(node.output[0]) or [None])[0] if node.output else None
    parts = []
    if prod is not None:
        parts.append(f"after '{prod.name}' ({prod.op_type})")
    if cons is not None:
        parts.append(f"before '{cons.name}' ({cons.op_type})")
    return ", ".join(parts)


def _float_inside(model, node, tensor: str) -> UserError:
    """The error for a float tensor between integer layers: node, op, reason and the Brevitas fix."""
    op = node.op_type
    where = _neighbours(model, node)
    if op.startswith(("ElementwiseMul", "ElementwiseAdd", "ElementwiseSub", "ElementwiseDiv", "Mul", "Add")):
        why = ("a float scale or bias between two integer layers that streamlining could not absorb into the "
               "next layer's thresholds")
        fix = ("add a quantizer (QuantIdentity, QuantReLU or a binary QuantIdentity) right after the layer that "
               "produces it, so the next layer takes integers, or remove the float op between the two layers")
    else:
        why = "a layer whose input or output is float"
        fix = "quantize that layer's input and output (QuantIdentity / QuantReLU) in the Brevitas model"
    return UserError(f"node '{node.name}' (op {op}{', ' + where if where else ''}) would run inside the accelerator "
                     f"on the float tensor '{tensor}': {why}; {fix}")


_LAYOUT_OPS = ("Transpose", "Shuffle", "Im2Col", "ConvolutionInputGenerator", "Reshape", "Flatten", "MaxPool",
               "MaxPoolNHWC", "StreamingMaxPool", "Pool", "FMPadding", "Pad")


def _per_channel_scale_before(model, node) -> UserError | None:
    """The error for a per-channel activation scale in front of ``node`` (a Conv/MatMul), or None.

    A quantizer with a scale per channel (QuantReLU/QuantIdentity with
    ``scaling_per_output_channel=True``) leaves a Mul by a channel vector after its thresholds.
    Streamlining absorbs it into a next threshold, but a Conv or Linear layer in between would
    need integer weights times a different scale per input channel: not integers, so no MVAU.
    """
    import numpy as np

    cur = node
    for _ in range(8):
        prod = model.find_producer(cur.input[0]) if cur.input else None
        if prod is None:
            return None
        if prod.op_type == "Mul" or prod.op_type.startswith("ElementwiseMul"):  # not MultiThreshold
            const = next((model.get_initializer(t) for t in prod.input if model.get_initializer(t) is not None), None)
            if const is None or len(np.unique(const)) <= 1:
                return None
            return UserError(
                f"node '{prod.name}' (op {prod.op_type}, a scale of shape {tuple(const.shape)}, before "
                f"'{node.name}' ({node.op_type})) multiplies each channel by a different float scale right before "
                "a Conv/Linear layer: integer weights times a per-input-channel scale are not integers, so "
                "FINN has no layer for it; give the quantizer that feeds the QuantConv2d/QuantLinear a "
                "per-tensor scale (drop scaling_per_output_channel=True from its QuantReLU/QuantIdentity), "
                "or re-quantize per tensor in between (e.g. a QuantIdentity after the pool)")
        if not prod.op_type.startswith(_LAYOUT_OPS):
            return None
        cur = prod
    return None


def step_dataflow_partition(model, ctx: Context):
    """Split off the hardware part; anything unmapped or float inside it is an error naming the node."""
    from qonnx.core.datatype import DataType

    hw = [n.domain.startswith("finn.custom_op.fpgadataflow") for n in model.graph.node]
    if any(hw):
        first, last = hw.index(True), len(hw) - 1 - hw[::-1].index(True)
        inside = [n for n, h in zip(model.graph.node[first:last + 1], hw[first:last + 1]) if not h]
        if inside:
            n = inside[0]
            for m in inside:
                if m.op_type in ("MatMul", "Conv"):
                    err = _per_channel_scale_before(model, m)
                    if err is not None:
                        raise err
            raise UserError(
                f"node '{n.name}' (op {n.op_type}, {_neighbours(model, n)}) could not be mapped to a hardware "
                f"layer and sits inside the accelerator (unmapped: "
                f"{', '.join(f'{m.name} ({m.op_type})' for m in inside)}); FINN maps integer Conv/MatMul, "
                "thresholds, max/average pools, adds of two integer streams and layout changes: quantize the "
                "tensors around it in the Brevitas model (QuantIdentity / QuantReLU) or replace the op"
            )
    else:
        raise UserError("no node of this network could be mapped to a hardware layer: it needs quantized "
                        "(Brevitas QuantConv2d / QuantLinear) layers with quantized inputs")
    for n in model.graph.node[first:last + 1]:
        for t in list(n.input) + list(n.output):
            if model.get_initializer(t) is None and model.get_tensor_datatype(t) == DataType["FLOAT32"]:
                consumers = [c for c in model.find_consumers(t) or [] if c.op_type.startswith(("MVAU", "MatMul"))]
                err = _per_channel_scale_before(model, consumers[0]) if consumers else None
                raise err or _float_inside(model, n, t)
    ctx.info["host_pre"] = list(ctx.info.get("host_input") or []) + [n.op_type for n in model.graph.node[:first]]
    ctx.info["host_pre_graph"] = [n.op_type for n in model.graph.node[:first]]
    ctx.info["host_post"] = [n.op_type for n in model.graph.node[last + 1:]]
    model = _finn("step_create_dataflow_partition")(model, ctx.finn_cfg)
    parent = Path(ctx.finn_cfg.output_dir) / "intermediate_models" / "dataflow_parent.onnx"
    shutil.copy(parent, ctx.out_dir / "dataflow_parent.onnx")
    return model


def step_specialize_layers(model, ctx: Context):
    """FINN: choose HLS or RTL implementations for the board's part; then every layer as RTL by default.

    FINN has binary (1-bit weight) MVAUs, k-bit MVAUs with thresholds, pools, elementwise
    ops and stream forks and joins only in HLS on Zynq parts; ours replace them, so the
    bitstream needs Vivado alone and Vivado gets the RTL the Verilator stage simulates.
    """
    from qonnx.transformation.general import GiveUniqueNodeNames

    from bnn2fpga.hw.finn_ops import UseOurStreamRTL, UseXnorRTL
    from bnn2fpga.hw.rtlgen.timing import max_levels

    model = _finn("step_specialize_layers")(model, ctx.finn_cfg)
    all_rtl = ctx.cfg.layers == "rtl"
    model = model.transform(UseXnorRTL(all_binary=ctx.cfg.binary_mvau == "rtl", kbit=all_rtl,
                                       max_levels=max_levels(ctx.cfg.board.clock_mhz)))
    if all_rtl:
        model = model.transform(UseOurStreamRTL())
    # Renaming lets reports and folding.json say which implementation a layer has.
    model = model.transform(GiveUniqueNodeNames())
    # Without HLS layers the bitstream needs no Vitis HLS or finn-hlslib (require_tools, verify).
    ctx.info["hls_layers"] = [n.name for n in model.graph.node if n.op_type.endswith("_hls")]
    return model


def step_folding(model, ctx: Context):
    """Parallelize: the user's folding JSON, FINN's SetFolding to an FPS, or our search."""
    from dataclasses import replace

    from bnn2fpga.flows import folding

    target = ctx.cfg.target
    serial = ctx.cfg.board.is_ecp5 and target.mode == "search"
    if serial:
        # A serial-fed board cannot use more frames than its link carries: the fastest design
        # that fits would only cost place-and-route time (and timing) for nothing.
        target = replace(target, fps=ecp5.serial_bound_fps(model))
    model, summary = folding.apply_target(model, target, ctx.cfg.board)
    if serial:
        summary = {**summary, "mode": "serial", "serial_bound_fps": target.fps}
        summary.pop("target_missed", None)
    folding.save_folding(model, ctx.out_dir / "folding.json")
    ctx.info["folding"] = summary
    return model


def step_minimize_bit_width(model, ctx: Context):
    """FINN: narrowest weight, accumulator and threshold types."""
    return _finn("step_minimize_bit_width")(model, ctx.finn_cfg)


def step_estimate(model, ctx: Context):
    """FINN's analytical estimates, our report.json, and the fit check against the board (calibrated where we can)."""
    from bnn2fpga.flows import folding, report

    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    model = _finn("step_generate_estimate_reports")(model, ctx.finn_cfg)
    for f in Path(ctx.finn_cfg.output_dir, "report").glob("*.json"):
        shutil.copy(f, ctx.report_dir / f.name)
    fit = folding.check_fit(model, ctx.cfg.board, ctx.cfg.target.ceiling)
    ctx.info["fit"] = {**fit.to_dict(),
                       "finn_used": folding.check_fit(model, ctx.cfg.board, ctx.cfg.target.ceiling,
                                                      calibrated=False).used}
    ctx.info["fit_message"] = "" if fit.fits else fit.message()
    report.write_estimate(model, ctx)
    return model


def step_package(model, ctx: Context):
    """The board's deployment folder deploy/: I/O spec, driver, class names, README (no bitstream yet).

    A design whose I/O the board driver cannot describe still verifies; the reason is
    kept and stops the build before the first Vivado step instead.
    """
    from bnn2fpga.flows import package

    try:
        package.write_deploy(model, ctx)
        ctx.info.pop("package_error", None)
    except UserError as e:
        package.remove_deploy(ctx.out_dir)
        ctx.info["package_error"] = str(e)
    return model


def step_fifo_sizing(model, ctx: Context):
    """FIFO depths from our Verilator simulation of the folded design, written where FINN's InsertFIFO reads them."""
    from bnn2fpga.flows import fifo_sizing, report
    from bnn2fpga.hw.rtlgen.from_finn import unsupported
    from bnn2fpga.hw.sim import verilator

    why_not = "; ".join(verilator.missing_tools()) or "; ".join(unsupported(model))
    if ctx.info.get("fit_message"):
        # No bitstream will be built (require_tools refuses it): not worth a whole-design simulation.
        sizing = fifo_sizing.Sizing("not measured", note="not measured: the design does not fit the board")
    elif why_not:
        # FINN's own (Vivado) sizing stays in charge at the fifo_depths step.
        sizing = fifo_sizing.Sizing("not measured", note=f"not measured (FINN sizes them in Vivado): needs {why_not}")
    else:
        sizing = fifo_sizing.measure(copy.deepcopy(model), ctx.cfg.board.part)
        model, sizing = fifo_sizing.confirm(model, sizing, ctx.cfg.board.part)
    ctx.info["fifos"] = sizing.to_dict()
    report.add_fifos(ctx.out_dir, ctx.info["fifos"])
    return model


# --- Steps that need Xilinx tools ------------------------------------------------------


def _xilinx_step(finn_names: tuple[str, ...]):
    def run(model, ctx: Context):
        for name in finn_names:
            model = _finn(name)(model, ctx.finn_cfg)
        return model

    return run


def step_fifo_depths(model, ctx: Context):
    """FINN inserts the FIFOs at the depths fifo_sizing measured (its Vivado sizing only when none were)."""
    if ctx.info.get("fifos", {}).get("method") == "verilator":
        ctx.finn_cfg.auto_fifo_depths = False
        config = ctx.out_dir / "fifo_depths.json"
        ctx.finn_cfg.fifo_config_file = finn_fifo_config(model, ctx.finn_cfg.fpga_part, config)
    return _finn("step_set_fifo_depths")(model, ctx.finn_cfg)


def finn_fifo_config(model, part: str, path: Path) -> Path:
    """FINN's FIFO config file naming the FIFOs its step_set_fifo_depths will insert, at the model's depths.

    FINN (auto_fifo_depths=False) inserts the FIFOs from the nodes' in/outFIFODepths, then
    insists on a file covering every FIFO by the name it gave it: this runs the same
    insertion on a copy and writes down what came out, so the file restates the depths.
    """
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveReadableTensorNames

    m = copy.deepcopy(model).transform(InsertDWC()).transform(InsertFIFO(create_shallow_fifos=True))
    m = m.transform(SpecializeLayers(part)).transform(GiveUniqueNodeNamesRecursive())
    m = m.transform(GiveReadableTensorNames())
    info = {"fifo_depths": {}, "impl_style": {}, "ram_style": {}}
    for n in m.get_nodes_by_op_type("StreamingFIFO_rtl"):
        inst = getCustomOp(n)
        info["fifo_depths"][n.name] = inst.get_nodeattr("depth")
        info["impl_style"][n.name] = inst.get_nodeattr("impl_style")
        info["ram_style"][n.name] = inst.get_nodeattr("ram_style")
    path.write_text(json.dumps(info, indent=2))
    return path


def step_driver(model, ctx: Context):
    """FINN's PYNQ driver and deployment package; then the bitstream joins our deploy/ and is zipped."""
    from bnn2fpga.flows import package

    model = _xilinx_step(("step_make_driver", "step_deployment_package"))(model, ctx)
    package.add_bitstream(ctx.out_dir, Path(ctx.finn_cfg.output_dir))
    return model


def _source_key(cfg: BuildConfig) -> str:
    return cfg.source.fingerprint()


def _input_key(cfg: BuildConfig) -> str:
    return cfg.input_decl.fingerprint() if cfg.input_decl else ""


def _implementation_key(cfg: BuildConfig) -> str:
    return f"{cfg.board.part}|{cfg.board.clock_mhz}|{cfg.target.ceiling}|{cfg.binary_mvau}|{cfg.layers}"


def _estimate_key(cfg: BuildConfig) -> str:
    return f"{cfg.board.part}|{cfg.board.clock_mhz}|{cfg.target.ceiling}|{_resource_model_digest()}"


def _folding_key(cfg: BuildConfig) -> str:
    b = cfg.board
    return f"{b.name}|{b.part}|{b.clock_mhz}|{b.resources}|{cfg.target.fingerprint()}|{_resource_model_digest()}"


def _resource_model_digest() -> str:
    # A recalibrated model prices layers differently: the search and the fit check run again.
    from bnn2fpga.hw.synth.resource_model import MODEL_FILE

    return file_digest(MODEL_FILE)[:16] if MODEL_FILE.exists() else "none"


def _rtl_key(cfg: BuildConfig) -> str:
    # The measured depths follow the simulated RTL and testbench, which the code fingerprint
    # (Python only) does not cover.
    from bnn2fpga.hw.rtlgen.base import rtl_digest
    from bnn2fpga.hw.sim import verilator

    return rtl_digest(*Path(verilator.__file__).parent.glob("*.py"))


def _vivado_key(cfg: BuildConfig) -> str:
    return f"{cfg.board.finn_board}|{cfg.board.clock_mhz}"


#: What only HLS layers need: a design of RTL layers alone goes to Vivado without them.
HLS_TOOLS = ("vitis_hls", "hlslib")


STEPS: list[Step] = [
    Step("export", step_export, key_inputs=_source_key, ladder="qonnx"),
    Step("qonnx_to_finn", step_qonnx_to_finn, key_inputs=_input_key, ladder="finn-onnx"),
    Step("tidy_up", step_tidy_up, ladder="tidy"),
    Step("streamline", step_streamline, ladder="streamlined"),
    Step("convert_to_hw", step_convert_to_hw, ladder="hw layers"),
    Step("dataflow_partition", step_dataflow_partition, ladder="dataflow partition", in_parent=True),
    Step("specialize_layers", step_specialize_layers, key_inputs=_implementation_key, ladder="specialized",
         in_parent=True),
    Step("folding", step_folding, key_inputs=_folding_key),
    Step("minimize_bit_width", step_minimize_bit_width, ladder="folded", in_parent=True),
    Step("estimate", step_estimate, key_inputs=_estimate_key),
    Step("package", step_package),
    Step("fifo_sizing", step_fifo_sizing, doc="FIFO depths from Verilator (peak occupancy + margin)",
         key_inputs=_rtl_key),
    # ECP5 boards: the open flow instead of the Vivado steps below (a no-op on Xilinx boards,
    # as those are on ECP5 boards; require_tools checks only the board family's tools).
    Step(ecp5.STEP, ecp5.step_ecp5_bitstream, ecp5.TOOLS,
         "open ECP5 flow: yosys synth_ecp5, nextpnr-ecp5, ecppack (ECP5 boards)", ecp5.step_key),
    Step("hw_codegen", ecp5.xilinx_only(_xilinx_step(("step_hw_codegen", "step_hw_ipgen"))), HLS_TOOLS,
         "HLS code generation and IP synthesis", _vivado_key),
    Step("fifo_depths", ecp5.xilinx_only(step_fifo_depths), ("vivado",),
         "FIFO insertion at the measured depths and their IP", _vivado_key),
    Step("stitched_ip", ecp5.xilinx_only(_xilinx_step(("step_create_stitched_ip",))), ("vivado",), "stitched IP",
         _vivado_key),
    Step("bitfile", ecp5.xilinx_only(_xilinx_step(("step_synthesize_bitfile",))), ("vivado",),
         "synthesis, place and route", _vivado_key),
    Step("driver", ecp5.xilinx_only(step_driver), ("vivado",), "PYNQ driver and deployment package with the bitstream",
         _vivado_key),
]

#: The last step that runs without Xilinx tools.
LAST_VIVADO_FREE = "fifo_sizing"


#: The last step whose model is the folded dataflow graph as FINN would stitch it: the
#: model the Verilator stage, Yosys and the simulated accelerator read.
FOLDED_MODEL_STEP = "minimize_bit_width"

#: The step whose model carries the measured FIFO depths (the Verilator stage stitches them).
SIZED_MODEL_STEP = "fifo_sizing"


def ladder_stages() -> list[tuple[str, str, bool]]:
    """(stage label, step, runs inside the parent graph) of every step the ladder executes, in order."""
    return [(s.ladder, s.name, s.in_parent) for s in STEPS if s.ladder]


def step_names() -> list[str]:
    """Step names in build order."""
    return [s.name for s in STEPS]


def check_until(until: str | None) -> None:
    """``until`` must name a step (a one-line error listing them otherwise)."""
    if until is not None and until not in step_names():
        raise UserError(f"unknown step '{until}'; steps: {', '.join(step_names())}")


def not_for_board(step: Step, info: dict) -> str | None:
    """Why ``step`` passes the model through on this build's board, or None when it is the board's."""
    if not step.needs or ecp5.applies(step.name, info):
        return None
    if step.name == ecp5.STEP:
        return "not for this board: Xilinx boards take the Vivado steps"
    return f"not for this board: ECP5 boards take the open flow ({ecp5.STEP})"


def tools_needed(step: Step, info: dict) -> tuple[str, ...]:
    """The tools ``step`` needs for this build: HLS tools only when the design has HLS layers."""
    if info.get("hls_layers") == []:
        return tuple(t for t in step.needs if t not in HLS_TOOLS)
    return step.needs


def require_tools(step: Step, done: list[str], info: dict) -> None:
    """Before a Xilinx step: the design must fit the board and the step's tools must exist."""
    if not_for_board(step, info) or not step.needs:
        return
    if info.get("fit_message"):
        raise DoesNotFit(info["fit_message"])
    if info.get("package_error"):
        raise UserError(f"no deployment package, so no bitstream is built: {info['package_error']}")
    missing = (ecp5.missing_tools() if step.name == ecp5.STEP else
               finn_env.detect_tools().missing_for(tools_needed(step, info)))
    if missing:
        raise ToolMissing(
            f"step '{step.name}' ({step.doc}) needs {' and '.join(missing)}, which this machine does not have; "
            f"steps done: {', '.join(done) or 'none'}. Build the bitstream in Docker with your Vivado mounted: "
            f"make docker-bitstream MODEL={info.get('model', '<model>')} BOARD={info.get('board', '<board>')}"
        )
