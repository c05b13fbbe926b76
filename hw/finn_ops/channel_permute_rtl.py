"""ChannelPermute_rtl: the ChannelPermute HW layer implemented by our hw/rtl/channel_permute.sv.

FINN's SpecializeLayers picks it for every ChannelPermute node (there is no HLS variant;
InferChannelPermuteLayer also asks for "rtl"). ``generate_hdl`` writes the Verilog
wrapper and copies our SystemVerilog into ``code_gen_dir_ipgen``; ``code_generation_ipi``
adds them to Vivado's block design as FINN's other RTL layers do. Execution is numpy,
or our Verilator simulation with exec_mode "rtlsim" (FINN's own rtlsim needs Vivado's XSI).
"""
from __future__ import annotations

from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from bnn2fpga.hw.finn_ops.channel_permute_hw import ChannelPermute
from bnn2fpga.hw.finn_ops.rtl_layer import OurRTLLayer


class ChannelPermute_rtl(OurRTLLayer, ChannelPermute, RTLBackend):
    """Double-buffered pixel permutation in RTL, one beat per cycle after the first pixel."""

    rtl_library = ("channel_permute.sv",)

    def get_nodeattr_types(self):
        """ChannelPermute's attributes plus RTLBackend's."""
        attrs = ChannelPermute.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        return attrs

    def execute_node(self, context, graph):
        """numpy, or our Verilator simulation with exec_mode 'rtlsim'."""
        if self.get_nodeattr("exec_mode") != "rtlsim":
            return ChannelPermute.execute_node(self, context, graph)
        return self._execute_verilator(context)

    def _execute_verilator(self, context):
        import numpy as np

        from bnn2fpga.hw.rtlgen.channel_permute import layer_from_op
        from bnn2fpga.hw.sim.graph_sim import decode, encode
        from bnn2fpga.hw.sim.layer_sim import simulate

        node, dt = self.onnx_node, self.get_input_datatype()
        simd = int(self.get_nodeattr("SIMD"))
        x = encode(context[node.input[0]], dt).reshape(-1, simd)
        run = simulate(layer_from_op(self), x, dt.signed() and dt.name != "BIPOLAR")
        self.set_nodeattr("cycles_rtlsim", int(run.cycles))
        out = decode(run.out, dt).astype(np.float32)
        context[node.output[0]] = out.reshape(context[node.output[0]].shape)

    def layer_rtl(self, model, out):
        """The wrapper around channel_permute.sv for this node's attributes."""
        from bnn2fpga.hw.rtlgen.channel_permute import layer_from_op

        return layer_from_op(self)
