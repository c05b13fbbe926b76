"""bnn2fpga: binarized neural networks to bit-exact FPGA accelerators.

One installed namespace for the project's folders (see pyproject.toml): ``bnn2fpga.quantize``
(quantize/), ``bnn2fpga.flows`` (flows/), ``bnn2fpga.hw`` (hw/), ``bnn2fpga.boards`` (boards/),
``bnn2fpga.benchmarks`` (benchmarks/). The layers and their import rules are in README "Layout".
"""

__version__ = "0.2.0"
