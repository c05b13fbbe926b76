"""Our RTL for FINN's stream layers that FINN has only in HLS: pools, forks, joins, elementwise ops.

FINN (finn-plus 1.6.1) implements Pool, DuplicateStreams, StreamingSplit/Concat,
GlobalAccPool and, on 7-series and UltraScale parts, ElementwiseAdd/Sub/Mul in HLS only
(its RTL elementwise ops need Versal's DSP58). A bitstream of such a design needs Vitis
HLS and finn-hlslib besides Vivado, and Vivado would get other hardware than the
Verilator stage simulates (``hw/rtlgen/from_finn.py`` has our RTL for each of them).

Each class here *is* FINN's HW op (attributes, shapes, folding, cycle and resource
models, Python execution) plus an RTL backend whose ``generate_hdl`` writes exactly the
RTL the Verilator stage stitches, and whose stream interfaces are named as those of
FINN's HLS twin, so FINN's stitching connects it like the layer it replaces.
Elementwise classes are named ``...Lut_rtl`` (LUT fabric, ``FABRIC_SUFFIX``):
``ElementwiseAdd_rtl`` is FINN's own (DSP58) op.
"""
from __future__ import annotations

from finn.custom_op.fpgadataflow.concat import StreamingConcat
from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
from finn.custom_op.fpgadataflow.elementwise_binary import ElementwiseAdd, ElementwiseMul, ElementwiseSub
from finn.custom_op.fpgadataflow.globalaccpool import GlobalAccPool
from finn.custom_op.fpgadataflow.hls.concat_hls import StreamingConcat_hls
from finn.custom_op.fpgadataflow.hls.duplicatestreams_hls import DuplicateStreams_hls
from finn.custom_op.fpgadataflow.hls.elementwise_binary_hls import (ElementwiseAdd_hls, ElementwiseMul_hls,
                                                                   ElementwiseSub_hls)
from finn.custom_op.fpgadataflow.hls.globalaccpool_hls import GlobalAccPool_hls
from finn.custom_op.fpgadataflow.hls.pool_hls import Pool_hls
from finn.custom_op.fpgadataflow.hls.split_hls import StreamingSplit_hls
from finn.custom_op.fpgadataflow.pool import Pool
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend
from finn.custom_op.fpgadataflow.split import StreamingSplit

from bnn2fpga.hw.finn_ops.rtl_layer import OurRTLLayer
from bnn2fpga.hw.rtlgen.from_finn import FABRIC_SUFFIX


class _StreamRTL:
    """What every class here adds to its FINN HW op (``hw_op``) besides OurRTLLayer."""

    hw_op: type  # FINN's HW op this class is
    hls_twin: type  # FINN's HLS op it replaces (interface names, folding by SetFolding)

    def get_nodeattr_types(self):
        """The HW op's attributes, RTLBackend's, and the library files the RTL instantiates."""
        attrs = self.hw_op.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        attrs["rtl_files"] = ("strings", False, [])
        return attrs

    def execute_node(self, context, graph):
        """FINN's Python execution of the HW op; single-node RTL simulation is not offered.

        The ladder simulates our RTL stitched as a whole partition (``flows/rtlsim_stage.py``).
        """
        if self.get_nodeattr("exec_mode") == "rtlsim":
            raise NotImplementedError(f"{self.onnx_node.name}: exec_mode 'rtlsim' of one {self.onnx_node.op_type} "
                                      "node; the verify ladder's Verilator stage simulates it in the stitched design")
        return self.hw_op.execute_node(self, context, graph)

    def layer_rtl(self, model, out):
        """The node's RTL as ``hw/rtlgen/from_finn.py`` generates it for the Verilator stage."""
        from bnn2fpga.hw.rtlgen.from_finn import layer_for

        return layer_for(model, self.onnx_node, out, mem_dir=out)

    def get_verilog_top_module_intf_names(self):
        """The HLS twin's stream names (in0_V, out0_V, ...): our wrappers use the same."""
        return self.hls_twin.get_verilog_top_module_intf_names(self)


def _rtl_op(name: str, hw_op: type, hls_twin: type) -> type:
    return type(name, (_StreamRTL, OurRTLLayer, hw_op, RTLBackend), {
        "hw_op": hw_op, "hls_twin": hls_twin, "__module__": __name__,
        "__doc__": f"FINN's {hw_op.__name__} as our RTL, in place of {hls_twin.__name__}.",
    })


#: Our RTL op per FINN HLS op it replaces (op type names as in the ONNX graph).
STREAM_RTL_OPS: dict[str, type] = {
    "Pool_hls": _rtl_op("Pool_rtl", Pool, Pool_hls),
    "DuplicateStreams_hls": _rtl_op("DuplicateStreams_rtl", DuplicateStreams, DuplicateStreams_hls),
    "StreamingSplit_hls": _rtl_op("StreamingSplit_rtl", StreamingSplit, StreamingSplit_hls),
    "StreamingConcat_hls": _rtl_op("StreamingConcat_rtl", StreamingConcat, StreamingConcat_hls),
    "GlobalAccPool_hls": _rtl_op("GlobalAccPool_rtl", GlobalAccPool, GlobalAccPool_hls),
    "ElementwiseAdd_hls": _rtl_op(f"ElementwiseAdd{FABRIC_SUFFIX}_rtl", ElementwiseAdd, ElementwiseAdd_hls),
    "ElementwiseSub_hls": _rtl_op(f"ElementwiseSub{FABRIC_SUFFIX}_rtl", ElementwiseSub, ElementwiseSub_hls),
    "ElementwiseMul_hls": _rtl_op(f"ElementwiseMul{FABRIC_SUFFIX}_rtl", ElementwiseMul, ElementwiseMul_hls),
}

#: Generic twins DespecializeForPython needs besides FINN's own HW ops (it strips "_rtl";
#: "ElementwiseAddLut" must then execute as FINN's ElementwiseAdd).
STREAM_HW_TWINS: dict[str, type] = {
    name: type(name, (cls.hw_op,), {"__doc__": f"FINN's {cls.hw_op.__name__} under our op's generic name.",
                                    "__module__": __name__})
    for cls in STREAM_RTL_OPS.values() if (name := cls.__name__[: -len("_rtl")]) != cls.hw_op.__name__
}
