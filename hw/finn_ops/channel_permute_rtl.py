"""ChannelPermute_rtl: the ChannelPermute HW layer implemented by our hw/rtl/channel_permute.sv.

FINN's SpecializeLayers picks it for every ChannelPermute node (there is no HLS variant;
InferChannelPermuteLayer also asks for "rtl"). ``generate_hdl`` writes the Verilog
wrapper and copies our SystemVerilog into ``code_gen_dir_ipgen``; ``code_generation_ipi``
adds them to Vivado's block design as FINN's other RTL layers do. Execution is numpy,
or our Verilator simulation with exec_mode "rtlsim" (FINN's own rtlsim needs Vivado's XSI).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from hw.finn_ops.channel_permute_hw import ChannelPermute


class ChannelPermute_rtl(ChannelPermute, RTLBackend):
    """Double-buffered pixel permutation in RTL, one beat per cycle after the first pixel."""

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

        from hw.rtlgen.channel_permute import layer_from_op
        from hw.sim.graph_sim import decode, encode
        from hw.sim.layer_sim import simulate

        node, dt = self.onnx_node, self.get_input_datatype()
        simd = int(self.get_nodeattr("SIMD"))
        x = encode(context[node.input[0]], dt).reshape(-1, simd)
        run = simulate(layer_from_op(self), x, dt.signed() and dt.name != "BIPOLAR")
        self.set_nodeattr("cycles_rtlsim", int(run.cycles))
        out = decode(run.out, dt).astype(np.float32)
        context[node.output[0]] = out.reshape(context[node.output[0]].shape)

    def generate_hdl(self, model, fpgapart, clk):
        """Write the wrapper ``<node>.v`` and copy channel_permute.sv into code_gen_dir_ipgen."""
        from hw.rtlgen.channel_permute import layer_from_op

        out = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        out.mkdir(parents=True, exist_ok=True)
        layer = layer_from_op(self)
        layer.write(out)
        for f in layer.library:
            shutil.copy(f, out / f.name)
        self.set_nodeattr("gen_top_module", layer.top)
        # FINN's stitching takes an RTL node's files from ip_path: the generated folder.
        self.set_nodeattr("ipgen_path", str(out.resolve()))
        self.set_nodeattr("ip_path", str(out.resolve()))

    def get_rtl_file_list(self, abspath=False):
        """Our SystemVerilog and the generated wrapper (top last)."""
        prefix = self.get_nodeattr("code_gen_dir_ipgen") + "/" if abspath else ""
        top = self.get_nodeattr("gen_top_module") or self.onnx_node.name
        return [prefix + "channel_permute.sv", prefix + top + ".v"]

    def code_generation_ipi(self):
        """Vivado IPI: add the files and reference the Verilog wrapper as a module."""
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        top = self.get_nodeattr("gen_top_module") or self.onnx_node.name
        cmd.append(f"create_bd_cell -type module -reference {top} {self.onnx_node.name}")
        return cmd

    def instantiate_ip(self, cmd):
        """Same as code_generation_ipi (FINN calls either, depending on the flow)."""
        cmd += self.code_generation_ipi()
