"""W as a table: row-wise Adam, rows by video key, the match gradient kept, DDP agreement."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from synthetic_videos import built_store

from dataset.voxceleb import VoxCelebDataset
from params.config import PARAMS_DIR, load_config
from training.checkpoint import list_checkpoints, load_checkpoint
from training.distributed import Distributed, check_in_sync
from training.meta import MetaLearner
from training.precision import Precision
from training.video_table import VideoTable

KEYS = [f"id{i:05d}/video" for i in range(6)]


def table(**kwargs) -> VideoTable:
    return VideoTable(
        4, lr=0.1, betas=(0.0, 0.999), generator=torch.Generator().manual_seed(0), **kwargs
    )


def test_rows_follow_video_keys_not_positions():
    w = table()
    rows = w.rows_for(KEYS[:4])
    assert rows.tolist() == [0, 1, 2, 3]
    before = w.weight.clone()
    # The store grew and the dataset lists videos in another order: same key, same row.
    assert w.rows_for([KEYS[5], KEYS[2], KEYS[4], KEYS[0]]).tolist() == [4, 2, 5, 0]
    assert torch.equal(w.weight[:4], before)
    restored = table()
    restored.load_state_dict(w.state_dict())
    assert restored.rows_for(KEYS).tolist() == w.rows_for(KEYS).tolist()
    state = w.state_dict()
    state["keys"] = state["keys"][:-1]
    with pytest.raises(ValueError, match="does not fit"):
        table().load_state_dict(state)


def test_row_wise_adam_is_adam_on_the_rows_it_touches():
    w = table()
    w.rows_for(KEYS)
    reference = torch.nn.Parameter(w.weight.clone())
    adam = torch.optim.Adam([reference], lr=0.1, betas=(0.0, 0.999))
    untouched = w.weight[4:].clone()
    for step in range(5):
        rows = torch.tensor([0, 1, 2, 3, 1])  # a repeated video adds up, as in a dense gradient
        leaf = w.gather(rows)
        target = torch.arange(20.0).view(5, 4) * (step + 1)
        ((leaf - target) ** 2).sum().backward()
        w.accumulate(rows, leaf)
        assert w.step() == 4
        adam.zero_grad()
        ((reference[rows] - target) ** 2).sum().backward()
        reference.grad[4:] = 0  # dense Adam would also move untouched rows' moments: skip them
        adam.step()
    assert torch.allclose(w.weight[:4], reference.detach()[:4], atol=1e-6)
    assert torch.equal(w.weight[4:], untouched)  # rows outside the batch never move
    assert w.steps.tolist() == [5, 5, 5, 5, 0, 0]


def test_the_match_gradient_reaches_w_together_with_the_hinge_gradient(tmp_path_factory):
    """The generator side's match loss moves the batch's W rows in the D step after it."""
    built = built_store(tmp_path_factory)
    moved = {}
    for updates in (True, False):
        config = load_config(
            PARAMS_DIR / "tiny.yaml",
            [f"loss.match_loss_updates_w={updates}", "optim.discriminator_steps=1"],
        )
        torch.manual_seed(0)
        run = Distributed(0, 1, 0, torch.device("cpu"))
        with pytest.warns(UserWarning):
            learner = MetaLearner(config, run, Precision("fp32", run.device))
        learner.table.rows_for(KEYS)
        start = learner.table.weight.clone()
        config.data.store = str(built.store)
        dataset = VoxCelebDataset.from_config(config, "all")
        batch = {k: torch.stack([dataset[(i, i)][k] for i in range(2)]) for k in dataset[0]}
        learner.step(batch, torch.tensor([1, 3]), measure=False)
        moved[updates] = learner.table.weight - start
    assert moved[True][[0, 2, 4, 5]].abs().sum() == 0  # only the batch's rows
    assert not torch.allclose(moved[True][[1, 3]], moved[False][[1, 3]])  # match grad applied


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, results: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    run = Distributed(rank, 2, rank, torch.device("cpu"))
    w = table()
    w.rows_for(KEYS)
    rows = torch.tensor([rank, 2 + rank * 2])  # each rank's batch has other videos
    leaf = w.gather(rows)
    (leaf.sum() * (rank + 1)).backward()
    w.accumulate(rows, leaf)
    w.step()
    torch.save(w.weight, results / f"rank{rank}.pt")
    check_in_sync({"W": w.weight}, run)  # the same on both ranks: passes
    if rank == 1:
        w.weight[0, 0] += 1.0
    try:
        check_in_sync({"W": w.weight}, run)
    except RuntimeError as error:
        (results / f"caught{rank}.txt").write_text(str(error))
    dist.destroy_process_group()


def test_ranks_exchange_only_rows_and_end_with_identical_tables(tmp_path):
    mp.spawn(_rank_main, args=(_free_port(), tmp_path), nprocs=2)
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(first, second)
    single = table()
    single.rows_for(KEYS)
    start = single.weight.clone()
    moved = (first - start).abs().sum(dim=1).nonzero().flatten().tolist()
    assert moved == [0, 1, 2, 4]  # the union of both ranks' rows, nothing else
    for rank in (0, 1):  # a drifted rank is caught on every rank
        assert "differs from rank 0" in (tmp_path / f"caught{rank}.txt").read_text()


def test_torchrun_with_two_processes_keeps_every_rank_identical(tmp_path_factory, tmp_path):
    built = built_store(tmp_path_factory)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "train.py",
        "--config",
        "params/tiny.yaml",
        "--data",
        str(built.store),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "--set",
        "train.steps=4",
        "--set",
        "train.checkpoint_every=2",
        "--set",
        "device=cpu",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Every checkpoint first compares all ranks' parameters and W (check_in_sync): it passed.
    checkpoints = list_checkpoints(tmp_path / "run")
    assert [p.name for p in checkpoints] == ["step-000000002.pt", "step-000000004.pt"]
    state = load_checkpoint(checkpoints[-1])
    assert state["episodes_seen"] == 4 * 2 * 2  # steps x ranks x batch
