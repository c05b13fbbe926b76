"""Our FINN custom ops, their registration with FINN/QONNX, and the switch that selects them.

Call :func:`register` before loading a model that uses them (``bnn2fpga.flows.ops.prepare``
does, for every flow entry point).
"""
from __future__ import annotations

from qonnx.transformation.base import Transformation

from bnn2fpga.hw.finn_ops.channel_permute import DOMAIN as GENERAL_DOMAIN
from bnn2fpga.hw.finn_ops.channel_permute import LEGACY_DOMAIN
from bnn2fpga.hw.finn_ops.channel_permute import ChannelPermute
from bnn2fpga.hw.finn_ops.channel_permute_hw import ChannelPermute as ChannelPermuteHW
from bnn2fpga.hw.finn_ops.channel_permute_rtl import ChannelPermute_rtl
from bnn2fpga.hw.finn_ops.mvau_xnor_rtl import MVAUXnor, MVAUXnor_rtl
from bnn2fpga.hw.finn_ops.stream_rtl import STREAM_HW_TWINS, STREAM_RTL_OPS

RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"
HW_DOMAIN = "finn.custom_op.fpgadataflow"


_registered = False


def register() -> None:
    """Make our op types known to FINN's and QONNX's registries (idempotent)."""
    global _registered
    if _registered:
        return
    import finn.custom_op.fpgadataflow as hw
    import finn.custom_op.fpgadataflow.rtl as rtl
    from qonnx.custom_op.registry import add_domain_alias, add_op_to_domain

    # FINN's flows recognise RTL nodes by this exact domain, so the op joins FINN's
    # RTL module; the generic twin lets DespecializeForPython strip the suffix.
    rtl.custom_op["MVAUXnor_rtl"] = MVAUXnor_rtl
    hw.custom_op["MVAUXnor"] = MVAUXnor
    add_op_to_domain(RTL_DOMAIN, MVAUXnor_rtl)
    add_op_to_domain(HW_DOMAIN, MVAUXnor)
    # SpecializeLayers looks for "<op>_rtl" in FINN's RTL module dict.
    rtl.custom_op["ChannelPermute_rtl"] = ChannelPermute_rtl
    hw.custom_op["ChannelPermute"] = ChannelPermuteHW
    add_op_to_domain(RTL_DOMAIN, ChannelPermute_rtl)
    add_op_to_domain(HW_DOMAIN, ChannelPermuteHW)
    add_op_to_domain(GENERAL_DOMAIN, ChannelPermute)
    # Our RTL for FINN's HLS-only stream layers, known by domain only: in FINN's RTL
    # module dict, SpecializeLayers would pick them itself, and --layers finn could not
    # keep FINN's own choice (UseOurStreamRTL switches them instead).
    for cls in STREAM_RTL_OPS.values():
        add_op_to_domain(RTL_DOMAIN, cls)
    for cls in STREAM_HW_TWINS.values():
        hw.custom_op[cls.__name__] = cls
        add_op_to_domain(HW_DOMAIN, cls)
    # ONNX files saved before the bnn2fpga namespace name the domain by its old module path.
    add_domain_alias(LEGACY_DOMAIN, GENERAL_DOMAIN)
    add_op_to_domain(LEGACY_DOMAIN, ChannelPermute)
    _registered = True


class UseXnorRTL(Transformation):
    """Switch specialized MVAU_hls nodes to MVAUXnor_rtl (our RTL xnor_mvtu).

    Binary-weight nodes: per layer through FINN's implementation style (a node whose
    ``preferred_impl_style`` is "rtl": FINN's own RTL MVAU cannot take 1-bit operands
    and falls back to HLS), or every one with ``all_binary=True``. With ``kbit=True``
    also k-bit integer weights: FINN left them in HLS because its RTL MVAU has no
    thresholds and needs DSPs and >= 4-bit operands. Eligible: constant weights that
    are binary in binaryXnorMode, bipolar with integer inputs, or integers. ``max_levels``
    (the board clock's depth limit, 0: 100 MHz's) decides the layers' pipeline registers.
    """

    def __init__(self, all_binary: bool = False, kbit: bool = False, max_levels: int = 0):
        super().__init__()
        self.all_binary, self.kbit, self.max_levels = all_binary, kbit, max_levels

    def apply(self, model):
        """Rewrite op type, domain and memory mode of eligible MVAU_hls nodes."""
        from qonnx.custom_op.registry import getCustomOp

        from bnn2fpga.hw.rtlgen.from_finn import Unsupported, mvtu_from_node

        for node in model.graph.node:
            if node.op_type != "MVAU_hls":
                continue
            inst = getCustomOp(node)
            try:
                w_bits = mvtu_from_node(model, node).w_bits
            except Unsupported:
                continue
            binary = w_bits == 1
            wanted = self.all_binary or inst.get_nodeattr("preferred_impl_style") == "rtl"
            if not (wanted if binary else self.kbit):
                continue
            node.op_type, node.domain = "MVAUXnor_rtl", RTL_DOMAIN
            ours = getCustomOp(node)
            ours.set_nodeattr("mem_mode", "internal_embedded")
            ours.set_nodeattr("weight_bits", int(w_bits))
            ours.set_nodeattr("max_levels", int(self.max_levels))
        return model, False


#: FINN's HLS op each of ours stands in for (op type names): FINN's passes that know ops by
#: name (SetFolding) see ours as that op.
HLS_TWIN_OF: dict[str, str] = {"MVAUXnor_rtl": "MVAU_hls",
                               **{cls.__name__: hls for hls, cls in STREAM_RTL_OPS.items()}}


class UseOurStreamRTL(Transformation):
    """Switch FINN's HLS-only stream layers (Pool_hls, DuplicateStreams_hls, ...) to our RTL ops.

    A node our generators cannot express (``hw/rtlgen/from_finn.py`` says why) stays HLS;
    the report lists every layer's implementation.
    """

    def apply(self, model):
        """Rewrite op type and domain of every node whose RTL can be generated."""
        import tempfile
        from pathlib import Path

        from bnn2fpga.hw.rtlgen.from_finn import Unsupported, layer_for

        with tempfile.TemporaryDirectory(prefix="rtl-check-") as tmp:
            for node in model.graph.node:
                cls = STREAM_RTL_OPS.get(node.op_type)
                if cls is None:
                    continue
                try:
                    layer_for(model, node, Path(tmp))
                except Unsupported:
                    continue
                node.op_type, node.domain = cls.__name__, RTL_DOMAIN
        return model, False


__all__ = ["HLS_TWIN_OF", "STREAM_RTL_OPS", "UseOurStreamRTL", "ChannelPermute", "ChannelPermuteHW", "ChannelPermute_rtl", "MVAUXnor", "MVAUXnor_rtl", "UseXnorRTL"]
