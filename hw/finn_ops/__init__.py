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
    # ONNX files saved before the bnn2fpga namespace name the domain by its old module path.
    add_domain_alias(LEGACY_DOMAIN, GENERAL_DOMAIN)
    add_op_to_domain(LEGACY_DOMAIN, ChannelPermute)
    _registered = True


class UseXnorRTL(Transformation):
    """Switch specialized binary MVAUs to MVAUXnor_rtl (our RTL) instead of MVAU_hls.

    Per layer through FINN's implementation style: a node whose ``preferred_impl_style``
    is "rtl" (FINN's own RTL MVAU cannot take 1-bit operands and falls back to HLS) is
    switched; with ``all_binary=True`` every eligible node is. Eligible: constant
    weights that are binary in binaryXnorMode or bipolar with integer inputs.
    """

    def __init__(self, all_binary: bool = False):
        super().__init__()
        self.all_binary = all_binary

    def apply(self, model):
        """Rewrite op type, domain and memory mode of eligible MVAU_hls nodes."""
        from qonnx.custom_op.registry import getCustomOp

        from bnn2fpga.hw.rtlgen.from_finn import Unsupported, mvtu_from_node

        for node in model.graph.node:
            if node.op_type != "MVAU_hls":
                continue
            inst = getCustomOp(node)
            if not (self.all_binary or inst.get_nodeattr("preferred_impl_style") == "rtl"):
                continue
            try:
                if mvtu_from_node(model, node).w_bits != 1:
                    continue  # k-bit weights: FINN's own MVAU_rtl is the RTL choice there
            except Unsupported:
                continue
            node.op_type, node.domain = "MVAUXnor_rtl", RTL_DOMAIN
            getCustomOp(node).set_nodeattr("mem_mode", "internal_embedded")
        return model, False


__all__ = ["ChannelPermute", "ChannelPermuteHW", "ChannelPermute_rtl", "MVAUXnor", "MVAUXnor_rtl", "UseXnorRTL"]
