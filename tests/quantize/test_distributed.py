"""Data-parallel training: two processes give what one gives for the same global batch,
rank 0 alone writes, and a run resumes with another process count."""
from __future__ import annotations

import csv

import pytest
import torch
import torch.distributed as dist
from torch import nn

from bnn2fpga.quantize import distributed
from bnn2fpga.quantize.train import TrainConfig, TrainConfigError, _batches, train

pytestmark = pytest.mark.slow


def _cfg(out, epochs, nproc=None):
    return TrainConfig(model="cbcnn-mnist", dataset="digits", out_dir=out, epochs=epochs, batch_size=40,
                       limit=480, progress=False, nproc=nproc)


def _rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_shards_cover_each_global_batch_once():
    idx = torch.arange(41)
    parts = [distributed.shard(idx, distributed.World(r, 3)) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(41))
    assert {len(p) for p in parts} <= {13, 14}


def test_last_batch_too_small_for_every_rank_is_left_for_the_next_epoch():
    import numpy as np

    batches = _batches(83, 40, np.random.default_rng(0), ranks=2)
    assert [len(b) for b in batches] == [40, 40]  # 3 left: fewer than 2 per process


_SHAPES = [(12, 5), (8, 3, 4, 4)]  # BatchNorm1d on features, BatchNorm2d on maps


def _case(shape):
    """A BatchNorm with non-trivial affine, a batch with spread statistics, weights for a loss."""
    g = torch.Generator().manual_seed(len(shape))
    bn = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1], momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(shape[1], generator=g) + 0.5)
        bn.bias.copy_(torch.rand(shape[1], generator=g) - 0.5)
    x = torch.randn(shape, generator=g) * 3 + torch.arange(shape[1]).view(1, -1, *[1] * (len(shape) - 2))
    return bn, x, torch.randn(shape, generator=g)


def _synced_half(shape):
    """One rank's part: BatchNorm over its shard inside synchronized_batch_norm, results gathered."""
    world = distributed.current()
    bn, x, w = _case(shape)
    mine = distributed.shard(torch.arange(shape[0]), world)
    xm = x[mine].clone().requires_grad_()
    with distributed.synchronized_batch_norm(bn) as count:
        y = bn(xm)
        assert count == 1
    (y * w[mine]).sum().backward()  # every rank's loss is a part of one sum
    grads = torch.cat([bn.weight.grad, bn.bias.grad])
    dist.all_reduce(grads)
    ys, gxs = [torch.empty_like(y) for _ in range(world.size)], [torch.empty_like(y) for _ in range(world.size)]
    dist.all_gather(ys, y.detach())
    dist.all_gather(gxs, xm.grad)
    full_y, full_gx = torch.empty_like(x), torch.empty_like(x)
    for r in range(world.size):
        full_y[r::world.size], full_gx[r::world.size] = ys[r], gxs[r]
    return full_y, full_gx, grads, bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)


def _two_ranks_all_shapes():
    return [_synced_half(s) for s in _SHAPES]


def test_synchronized_batch_norm_on_two_ranks_is_batch_norm_on_the_whole_batch():
    got = distributed.spawn(_two_ranks_all_shapes, 2)
    for shape, (y, gx, grads, mean, var, tracked) in zip(_SHAPES, got):
        bn, x, w = _case(shape)
        x = x.clone().requires_grad_()
        ref = bn(x)
        (ref * w).sum().backward()
        torch.testing.assert_close(y, ref.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, x.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grads, torch.cat([bn.weight.grad, bn.bias.grad]), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(mean, bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(var, bn.running_var, rtol=1e-5, atol=1e-6)  # unbiased, as PyTorch keeps it
        assert tracked == 1


def test_synchronized_batch_norm_leaves_one_process_and_eval_mode_alone():
    bn, x, _ = _case(_SHAPES[1])
    ref = bn(x)
    bn2, _, _ = _case(_SHAPES[1])
    with distributed.synchronized_batch_norm(nn.Sequential(bn2)) as count:
        assert count == 1 and "forward" in vars(bn2)
        torch.testing.assert_close(bn2(x), ref)
    assert "forward" not in vars(bn2)  # the layer is as it was


def test_two_processes_match_one_and_resume_with_another_count(tmp_path):
    one = train(_cfg(tmp_path / "one", 2), log=lambda m: None)
    two = train(_cfg(tmp_path / "two", 2, nproc=2), log=lambda m: None)
    r1, r2 = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(r2) == 2  # one writer: no row twice
    assert [int(r["images"]) for r in r1] == [int(r["images"]) for r in r2]  # the same global batches
    # Same data, order, augmentation and (pooled) BatchNorm statistics; sums in another order
    # still flip a few signs of a binary network, so close, not equal.
    for a, b in zip(r1, r2):
        assert abs(float(a["loss"]) - float(b["loss"])) < 0.15 * float(a["loss"])
    assert abs(one.best_val_acc - two.best_val_acc) < 0.15
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["best.pt", "last.pt"]
    # Resume the two-process run on one process: only the missing epoch is trained.
    more = train(_cfg(tmp_path / "two", 3), log=lambda m: None)
    assert more.epochs_run == 1 and len(_rows(tmp_path / "two")) == 3


def test_a_batch_too_small_for_the_processes_is_a_config_error(tmp_path):
    cfg = TrainConfig(model="cbcnn-mnist", dataset="digits", out_dir=tmp_path / "t", epochs=1, batch_size=2,
                      limit=100, progress=False, nproc=2)
    with pytest.raises(TrainConfigError, match="too small for 2 processes"):
        train(cfg, log=lambda m: None)
