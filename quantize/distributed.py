"""Data-parallel training on several processes or machines (PyTorch DistributedDataParallel).

Two ways in, one code path:
* ``bnn2fpga train ... --nproc N`` spawns N local processes (gloo on CPU, nccl on GPUs);
* ``torchrun`` (any number of nodes) sets ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` and
  starts the CLI once per process; :func:`from_env` joins that group.
Every rank draws the same global batch order (seeded by epoch), augments the whole global
batch, and trains on its slice; DDP averages the gradients, so one optimizer step sees the
global batch. BatchNorm layers pool their batch statistics over all ranks
(:func:`synchronized_batch_norm`), so the forward pass is the one process' forward pass too.
Rank 0 alone writes files and logs.
"""
from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process' place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and logs."""
        return self.rank == 0


def current() -> World:
    """The world of the running process group (a single process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def backend() -> str:
    """nccl where GPUs are, gloo on CPUs."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def from_env() -> bool:
    """Join the process group torchrun describes in the environment; False when there is none."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend())
    return True


def shard(indices: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's part of a global batch (every rank gets an equal share, give or take one)."""
    return indices[world.rank::world.size]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over all ranks (the values themselves on a single process)."""
    if current().size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier() -> None:
    """Wait for every rank (nothing on a single process)."""
    if current().size > 1:
        dist.barrier()


def _all_reduce_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Sum over ranks whose backward pass sums the ranks' gradients."""
    from torch.distributed.nn.functional import all_reduce

    # Its deprecation points to a private module; the public function still works and is
    # the one with a backward pass, so only that one warning is silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated",
                                category=FutureWarning)
        return all_reduce(t)


def _synced_forward(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm in training mode over the union of every rank's batch (differentiable)."""
    if not bn.training or current().size == 1:
        return type(bn).forward(bn, x)
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    # Sums in float64: the two-pass variance is exact enough and the reduction order cannot matter.
    local = torch.cat([x.double().sum(dims), x.new_tensor([x.numel() / x.size(1)], dtype=torch.float64)])
    total = _all_reduce_with_grad(local)
    count = total[-1]
    mean = total[:-1] / count
    centred = x.double() - mean.view(shape)
    var = _all_reduce_with_grad((centred * centred).sum(dims)) / count
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - m).add_(mean.to(bn.running_mean.dtype), alpha=m)
            unbiased = var * count / max(float(count) - 1, 1.0)
            bn.running_var.mul_(1 - m).add_(unbiased.to(bn.running_var.dtype), alpha=m)
    y = (centred / torch.sqrt(var.view(shape) + bn.eps)).to(x.dtype)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y


@contextmanager
def synchronized_batch_norm(model: nn.Module) -> Iterator[int]:
    """Inside: every BatchNorm of ``model`` trains on the global batch's statistics.

    PyTorch's own SyncBatchNorm runs on GPUs only; this does the same with two all-reduces
    per layer, on any backend. Without it each rank normalizes by its own half batch, and a
    2-process run drifts from the 1-process one (measured: 83.8 % vs 93.4 % validation
    accuracy after 4 epochs of cbcnn-mnist). Yields the number of layers it synchronizes.
    """
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)]
    for m in layers:
        m.forward = types.MethodType(_synced_forward, m)
    try:
        yield len(layers)
    finally:
        for m in layers:
            del m.forward


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, size: int, port: int, fn: Callable, args: tuple, results, log_level: int | None) -> None:
    if rank == 0 and log_level is not None:
        # A spawned process starts with no logging set up; rank 0 speaks as the parent did.
        log = logging.getLogger("bnn2fpga")
        log.setLevel(log_level)
        log.propagate = False
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    dist.init_process_group(backend(), init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    # The machine's cores are shared among the ranks; oversubscribing them is slower than one process.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    try:
        out = fn(*args)
        # Every rank finishes its collectives before any tears the group down: a rank whose
        # peer closed the connection mid-collective aborts ("terminate called ..."), seen
        # once in a full test run on a loaded machine.
        dist.barrier()
        if rank == 0:
            # Pickled by value here: through the queue, tensors would be shared by file
            # descriptors that die with this process before the parent reads them.
            results.put(pickle.dumps(("ok", out)))
    except BaseException as e:  # noqa: BLE001 - handed to the parent, which re-raises it
        if rank == 0:
            results.put(pickle.dumps(("error", e)))
        raise
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable, nproc: int, *args: Any) -> Any:
    """Run ``fn(*args)`` in ``nproc`` local processes joined in one group; returns rank 0's result."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    ours = logging.getLogger("bnn2fpga")
    level = ours.getEffectiveLevel() if ours.handlers else None
    try:
        mp.spawn(_worker, args=(nproc, _free_port(), fn, args, results, level), nprocs=nproc, join=True)
    except mp.ProcessRaisedException:
        if results.empty():
            raise
    status, value = pickle.loads(results.get())
    if status == "error":
        raise value
    return value
