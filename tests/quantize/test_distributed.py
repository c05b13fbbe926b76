"""Data-parallel training: two processes give what one gives for the same global batch,
rank 0 alone writes, and a run resumes with another process count."""
from __future__ import annotations

import csv

import pytest
import torch

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


def test_two_processes_match_one_and_resume_with_another_count(tmp_path):
    one = train(_cfg(tmp_path / "one", 2), log=lambda m: None)
    two = train(_cfg(tmp_path / "two", 2, nproc=2), log=lambda m: None)
    r1, r2 = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(r2) == 2  # one writer: no row twice
    assert [int(r["images"]) for r in r1] == [int(r["images"]) for r in r2]  # the same global batches
    # Same data, order and augmentation; BatchNorm sees per-process statistics, so close, not equal.
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
