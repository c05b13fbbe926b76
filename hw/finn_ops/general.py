"""The QONNX custom-op domain ``bnn2fpga.hw.finn_ops.general`` (and, through an alias, the older ``hw.finn_ops.general``): our generic (pre-hardware) ops.

QONNX resolves a node's domain by importing the module of that name and looking up
the op type in its ``__all__``, so nodes of this domain execute and infer shapes
without anyone registering them first.
"""
from bnn2fpga.hw.finn_ops.channel_permute import ChannelPermute

__all__ = ["ChannelPermute"]
