"""What every one of our RTL layers gives FINN's Vivado flow: generated files, file list, block-design commands.

A layer class mixes this in next to FINN's RTLBackend and says which SystemVerilog
files of ``hw/rtl`` it instantiates (``rtl_library``) and how to build its
:class:`~hw.rtlgen.base.LayerRTL` (``layer_rtl``).
"""
from __future__ import annotations

import shutil
from pathlib import Path


class OurRTLLayer:
    """generate_hdl / get_rtl_file_list / code_generation_ipi / instantiate_ip for our RTL layers."""

    #: File names in hw/rtl this layer's wrapper instantiates.
    rtl_library: tuple[str, ...] = ()

    def layer_rtl(self, model, out: Path):
        """The layer's RTL (memory files, if any, are written into ``out``)."""
        raise NotImplementedError

    def generate_hdl(self, model, fpgapart, clk):
        """Write the wrapper (``<node>.v``), memory files and our SystemVerilog into code_gen_dir_ipgen."""
        out = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        out.mkdir(parents=True, exist_ok=True)
        layer = self.layer_rtl(model, out.resolve())
        layer.write(out)
        if "rtl_files" in self.get_nodeattr_types():
            # Generated layers choose their library files per node (a max or a sum pool).
            self.set_nodeattr("rtl_files", [f.name for f in layer.library])
        # The folder is complete on its own (e.g. for a hand-made project); FINN's
        # stitching uses the shared files instead (see get_rtl_file_list).
        for f in layer.library:
            shutil.copy(f, out / f.name)
        self.set_nodeattr("gen_top_module", layer.top)
        # FINN's stitching takes a node's files from ip_path (HLS nodes get it from
        # Vitis synthesis; RTL nodes set it to their generated folder, as here).
        self.set_nodeattr("ipgen_path", str(out.resolve()))
        self.set_nodeattr("ip_path", str(out.resolve()))

    def get_rtl_file_list(self, abspath=False):
        """Our SystemVerilog and the generated wrapper (top last, as FINN lists them).

        Bare names are the files in code_gen_dir_ipgen. Absolute paths take the
        SystemVerilog from hw/rtl, one file for every layer (as FINN's RTL ops use
        finn-rtllib): a project given a copy per layer would define each module many times.
        """
        from bnn2fpga.hw.rtlgen.base import RTL_DIR

        top = self.get_nodeattr("gen_top_module") or self.onnx_node.name
        library = self._library_files()
        if not abspath:
            return [*library, top + ".v"]
        return [str(RTL_DIR / f) for f in library] + [self.get_nodeattr("code_gen_dir_ipgen") + "/" + top + ".v"]

    def _library_files(self) -> list[str]:
        per_node = list(self.get_nodeattr("rtl_files")) if "rtl_files" in self.get_nodeattr_types() else []
        return per_node or list(self.rtl_library)

    def code_generation_ipi(self):
        """Vivado IPI: add the files and reference the Verilog wrapper as a module."""
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        top = self.get_nodeattr("gen_top_module") or self.onnx_node.name
        cmd.append(f"create_bd_cell -type module -reference {top} {self.onnx_node.name}")
        return cmd

    def instantiate_ip(self, cmd):
        """Same as code_generation_ipi (FINN calls either, depending on the flow)."""
        cmd += self.code_generation_ipi()
