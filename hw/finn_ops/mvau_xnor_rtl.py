"""MVAUXnor_rtl: FINN's MVAU implemented by our hw/rtl/xnor_mvtu.sv (binary or k-bit weights).

FINN has binary (XNOR-popcount) matrix-vector layers only in HLS, and k-bit ones with
thresholds too (its RTL MVAU has no thresholds and needs DSPs). This op keeps
FINN's MVAU attributes, shapes, folding, estimates and Python execution (it *is*
an MVAU) and adds what an RTL backend must provide: ``generate_hdl`` writes a
Verilog wrapper, our SystemVerilog and the weight/threshold memory files into
``code_gen_dir_ipgen``, and ``code_generation_ipi`` adds them to Vivado's block
design the way FINN's other RTL layers do, so FINN's stitching (CreateStitchedIP)
instantiates it like any ``*_rtl`` node. Weights are embedded (mem_mode
internal_embedded): there is no weight stream port.
"""
from __future__ import annotations

from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from bnn2fpga.hw.finn_ops.rtl_layer import OurRTLLayer


class _EstimateView:
    """Our layer as FINN's MVAU resource models see it.

    Those models key on attributes with an HLS meaning: resType (our 1-bit products
    need no multiplier: an XNOR, or adding instead of subtracting, inside the adder
    tree the model counts anyway) and mem_mode/ram_style (bnn_rom puts the weights in
    LUTs or BRAM, which FINN's models express as a decoupled memory of that style).
    """

    def __init__(self, op, weights_in_luts: bool):
        self._op, self._luts = op, weights_in_luts

    def __getattr__(self, name):
        return getattr(self._op, name)

    def get_nodeattr(self, name):
        """The op's attribute, or the value that describes our hardware to FINN's models."""
        if name == "resType":
            # 1-bit products need no multiplier; k-bit ones are LUT multipliers in our RTL.
            return "dsp" if self._op.binary_weights() else "lut"
        if name == "mem_mode":
            return "internal_decoupled"
        if name == "ram_style":
            return "distributed" if self._luts else "block"
        return self._op.get_nodeattr(name)


class MVAUXnor(MVAU):
    """The generic (unspecialized) twin: exactly FINN's MVAU, for Python execution."""


class MVAUXnor_rtl(OurRTLLayer, MVAU, RTLBackend):
    """Binary-weight MVAU as RTL (xnor_mvtu), selectable per layer instead of MVAU_hls."""

    # Our SystemVerilog behind every layer's wrapper (hw/rtl), in compilation order.
    rtl_library = ("bnn_rom.sv", "xnor_mvtu.sv")

    def get_nodeattr_types(self):
        """MVAU's attributes plus RTLBackend's, with weights embedded in the layer."""
        attrs = MVAU.get_nodeattr_types(self)
        attrs.update(RTLBackend.get_nodeattr_types(self))
        attrs["mem_mode"] = ("s", False, "internal_embedded", {"internal_embedded"})
        # Bits of the weights as the RTL stores them (1: XNOR or sign flip, no multiplier),
        # from the weight values when the node is switched: FINN's weightDataType says INT8
        # for +-1 weights until minimize_bit_width, which would price multipliers that are not there.
        attrs["weight_bits"] = ("i", False, 1)
        # LUT levels one pipeline stage of the RTL may have, from the board's clock
        # (hw/rtlgen/timing.py); 0: the 100 MHz limit.
        attrs["max_levels"] = ("i", False, 0)
        return attrs

    def binary_weights(self) -> bool:
        """1-bit weights (XNOR mode or bipolar): products are XNORs or sign flips, no multiplier."""
        return bool(self.get_nodeattr("binaryXnorMode")) or self.get_nodeattr("weight_bits") == 1

    def _estimate_view(self) -> _EstimateView:
        style = self.get_nodeattr("ram_style")
        # bnn_rom honours "block" and "distributed"; otherwise Vivado chooses, which
        # FINN's models assume is LUTs up to 128 words.
        return _EstimateView(self, style == "distributed" or (style != "block" and self.calc_wmem() <= 128))

    def lut_estimation(self, fpgapart):
        """FINN-R's LUT model (FINN's MVAU_hls estimate) for our datapath and weight ROM.

        Without this FINN's RTLBackend default of 0 LUTs would let the folding search
        fill the board with these layers.
        """
        from finn.custom_op.fpgadataflow.hls.matrixvectoractivation_hls import MVAU_hls

        return MVAU_hls.lut_estimation(self._estimate_view(), fpgapart)

    def bram_estimation(self, fpgapart):
        """FINN's MVAU BRAM model for a weight ROM in BRAM (0 when bnn_rom keeps it in LUTs)."""
        return MVAU.bram_estimation(self._estimate_view(), fpgapart)

    def uram_estimation(self, fpgapart):
        """None: bnn_rom has no URAM style."""
        return 0

    def dsp_estimation(self, fpgapart):
        """None: our products are XNORs (1-bit weights) or LUT multipliers (k-bit), never DSPs."""
        return 0

    def execute_node(self, context, graph):
        """Python execution (FINN's MVAU), or our Verilator simulation with exec_mode 'rtlsim'."""
        if self.get_nodeattr("exec_mode") != "rtlsim":
            return MVAU.execute_node(self, context, graph)
        return self._execute_verilator(context)

    def _execute_verilator(self, context):
        import numpy as np
        from qonnx.core.modelwrapper import ModelWrapper

        from bnn2fpga.hw.sim.graph_sim import decode, encode
        from bnn2fpga.hw.sim.layer_sim import simulate

        node = self.onnx_node
        m = self._mvtu(ModelWrapper(self._model_for(context)))
        x = encode(context[node.input[0]], self.get_input_datatype(0)).reshape(-1, self.get_nodeattr("SIMD"))
        odt = self.get_output_datatype()
        run = simulate(m.layer(node.name), x, odt.signed() and odt.name != "BIPOLAR")
        out = decode(run.out, odt).astype(np.float32)
        context[node.output[0]] = out.reshape(context[node.output[0]].shape)

    def _model_for(self, context):
        # A one-node model carrying this node's initializers, for the MVTU builder.
        from onnx import TensorProto, helper
        from qonnx.util.basic import qonnx_make_model

        node = self.onnx_node
        inits = [helper.make_tensor(t, TensorProto.FLOAT, context[t].shape, context[t].flatten())
                 for t in node.input[1:]]
        vi = lambda t: helper.make_tensor_value_info(t, TensorProto.FLOAT, context[t].shape)  # noqa: E731
        g = helper.make_graph([node], "one", [vi(node.input[0])], [vi(node.output[0])], inits)
        return qonnx_make_model(g)

    def _mvtu(self, model):
        from bnn2fpga.hw.rtlgen.from_finn import mvtu_from_node

        return mvtu_from_node(model, self.onnx_node)

    def layer_rtl(self, model, out):
        """The xnor_mvtu wrapper for this node, its weight and threshold memories written into ``out``."""
        return self._mvtu(model).layer(self.onnx_node.name, exp_cycles=self.get_exp_cycles(), mem_dir=out)

    def get_verilog_top_module_intf_names(self):
        """One stream in, one out: the weights are inside the layer."""
        names = super().get_verilog_top_module_intf_names()
        names["s_axis"] = names["s_axis"][:1]
        return names
