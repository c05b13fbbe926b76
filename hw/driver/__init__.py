"""bnn2fpga's board-side driver: runs a deployed BNN accelerator from the board's own Python.

Board-side modules use only numpy and the standard library, plus ``pynq``, Pillow or
OpenCV when present, imported where they are needed. The build's ``package`` step
copies this folder, together with ``quantize/preprocess.py``, ``input_quant.py`` and
``postprocess.py``, into ``deploy/bnn2fpga_driver/``; only that copy is importable.
"""

__all__ = ["__version__"]

__version__ = "1"
