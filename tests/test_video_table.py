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
from runtime.precision import Precision
from training.checkpoint import list_checkpoints, load_checkpoint
from training.distributed import Distributed, check_in_sync
from training.meta import MetaLearner
from training.video_table import VideoTable

KEYS = [f"id{i:05d}/video" for i in range(6)]


def table(**kwargs) -> VideoTable:
    return VideoTable(4, lr=0.1, betas=(0.0, 0.999), **kwargs)


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


def test_a_new_row_starts_from_its_key_not_from_its_position():
    """A resumed table that meets new videos gives them fresh values, not the first rows'."""
    first = table(seed=3)
    first.rows_for(KEYS[:3])
    resumed = table(seed=3)
    resumed.load_state_dict(first.state_dict())
    resumed.rows_for(KEYS[3:])
    start_values = resumed.weight
    assert len({tuple(row.tolist()) for row in start_values}) == len(KEYS)
    in_one_go = table(seed=3)
    in_one_go.rows_for(list(reversed(KEYS)))
    assert torch.equal(in_one_go.weight[in_one_go.rows_for(KEYS)], start_values)
    assert 0.01 < start_values.std().item() < 0.03  # N(0, 0.02)


# Idle gaps between uses of each row: 0 (every step), 1, 7 and 500 steps; row 4 is used once
# late, row 5 never. A row of W at VoxCeleb2 scale waits about 18,000 steps between uses.
SCHEDULE = {0: 1, 1: 2, 2: 8, 3: 501}
STEPS = 1010


def used_rows(step: int) -> list[int]:
    rows = [row for row, every in SCHEDULE.items() if step % every == 0]
    return rows + [4] * (step == 700) + [1] * (step % 6 == 0)  # a repeated video adds up


@pytest.mark.parametrize("beta2", [0.999, 0.9])
def test_row_wise_adam_equals_dense_adam_on_w_at_irregular_idle_gaps(beta2):
    """The table's update equals torch.optim.Adam on W as one dense parameter, whose idle rows
    see a zero gradient: global step for bias correction, second moments decayed while idle."""
    w = VideoTable(4, lr=0.01, betas=(0.0, beta2))
    w.rows_for(KEYS)
    dense = torch.nn.Parameter(w.weight.clone())
    adam = torch.optim.Adam([dense], lr=0.01, betas=(0.0, beta2))
    targets = torch.randn(STEPS, len(KEYS), 4, generator=torch.Generator().manual_seed(1))
    for step in range(STEPS):
        rows = torch.tensor(used_rows(step))
        leaf = w.gather(rows)
        (leaf - targets[step, rows]).abs().sum().backward()
        w.accumulate(rows, leaf)
        w.step()
        adam.zero_grad()
        (dense[rows] - targets[step, rows]).abs().sum().backward()
        adam.step()
        if step in (1, 9, 502, 700, STEPS - 1):
            assert torch.allclose(w.weight, dense.detach(), rtol=1e-5, atol=1e-6), step
    assert torch.equal(w.weight[5], dense.detach()[5])  # a row never used never moves
    assert w.step_count == STEPS


def test_a_version_1_checkpoint_of_w_is_upgraded_and_resumes(tmp_path):
    """Checkpoints written before the global step kept a step count per row."""
    from training.checkpoint import FORMAT, load_checkpoint

    w = table()
    w.rows_for(KEYS)
    state = w.state_dict()
    old_table = {k: v for k, v in state.items() if k not in ("last_step", "step")}
    old_table["steps"] = torch.tensor([3, 0, 5, 1, 0, 0])
    path = tmp_path / "old.pt"
    config = {"optim": {"discriminator_steps": 2}}
    torch.save(
        {"format": FORMAT, "version": 1, "step": 7, "config": config, "table": old_table}, path
    )
    upgraded = load_checkpoint(path)
    resumed = table()
    resumed.load_state_dict(upgraded["table"])
    assert resumed.step_count == 14 and resumed.last_step.tolist() == [14] * len(KEYS)
    assert torch.equal(resumed.weight, w.weight)


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
        (results / f"caught{rank}.txt").write_text(str(error), encoding="utf-8")
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
        assert "differs from rank 0" in (tmp_path / f"caught{rank}.txt").read_text(encoding="utf-8")


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
    result = subprocess.run(
        command, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Every checkpoint first compares all ranks' parameters and W (check_in_sync): it passed.
    checkpoints = list_checkpoints(tmp_path / "run")
    assert [p.name for p in checkpoints] == ["step-000000002.pt", "step-000000004.pt"]
    state = load_checkpoint(checkpoints[-1])
    assert state["episodes_seen"] == 4 * 2 * 2  # steps x ranks x batch
