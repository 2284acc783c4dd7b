"""Meta-training end to end on the tiny config: resume, refusals, learning, alarms, damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import filelock
import pytest
import torch
from full_disk import fill
from stop_requests import WAYS, ask_to_stop, stop_file
from synthetic_videos import BuiltStore, built_store

from dataset.store import read_manifest
from dataset.voxceleb import VoxCelebDataset
from models.meta_model import MetaModelError, load_meta_model
from params.config import PARAMS_DIR, Config, load_config
from train import main as train_main
from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from training.export import main as export_main
from training.loop import RunFolderError, train
from training.monitor import TrainingCollapsed

pytestmark = pytest.mark.filterwarnings("ignore:loss.random_perceptual_networks")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltStore:
    return built_store(tmp_path_factory)


def tiny(built: BuiltStore, steps: int, *overrides: str) -> Config:
    return load_config(
        PARAMS_DIR / "tiny.yaml",
        [
            f"data.store={built.store}",
            f"train.steps={steps}",
            "train.checkpoint_every=1000",
            "train.sample_every=2",
            "train.log_every=2",
            *overrides,
        ],
    )


def tensors_of(checkpoint: dict) -> dict[str, torch.Tensor]:
    named = {"W": checkpoint["table"]["weight"], "W_adam": checkpoint["table"]["exp_avg_sq"]}
    for network in ("embedder", "generator", "discriminator"):
        named.update({f"{network}.{k}": v for k, v in checkpoint[network].items()})
    for side in ("optimizer_g", "optimizer_d"):
        for index, moments in checkpoint[side]["state"].items():
            named[f"{side}.{index}"] = moments["exp_avg_sq"]
    return named


def newest(run: Path) -> dict:
    return load_checkpoint(list_checkpoints(run)[-1])


def test_resume_gives_the_same_parameters_as_no_interruption(built, tmp_path):
    """3 steps, stop, resume for 3 more (with DataLoader workers this time) = 6 steps at once."""
    train(tiny(built, 6), tmp_path / "straight", progress_bar=False)
    train(tiny(built, 3), tmp_path / "resumed", progress_bar=False)
    resumed = tiny(built, 6, "data.num_workers=2")
    train(resumed, tmp_path / "resumed", resume=True, progress_bar=False)
    straight, again = (
        tensors_of(newest(tmp_path / "straight")),
        tensors_of(newest(tmp_path / "resumed")),
    )
    assert straight.keys() == again.keys()
    different = [name for name in straight if not torch.equal(straight[name], again[name])]
    assert different == []
    assert newest(tmp_path / "resumed")["step"] == 6


def test_a_run_folder_is_never_overwritten_and_resume_needs_a_checkpoint(built, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RunFolderError, match="pass --resume"):
        train(tiny(built, 1), run, progress_bar=False)
    with pytest.raises(RunFolderError, match="not a run folder"):
        train(tiny(built, 1), run, resume=True, progress_bar=False)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]
    assert (
        train_main(["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)])
        == 2
    )


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(built, tmp_path):
    """Killed before any checkpoint (config and logs written, no checkpoint): before, neither
    --resume ("no checkpoint") nor a new start ("pass --resume") worked."""
    run = tmp_path / "run"
    start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
    assert train_main([*start, "--set", "train.steps=1", "--no-progress"]) == 0
    shutil.rmtree(run / "checkpoints")  # as if killed before the first one was written
    (run / "meta.pt").unlink()
    assert train_main(["--out", str(run), "--resume", "--no-progress"]) == 0
    assert newest(run)["step"] == 1


def test_a_second_process_on_one_run_folder_is_refused(built, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with filelock.FileLock(run / ".lock"):  # another process is training there
        start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
        assert train_main([*start, "--set", "train.steps=1", "--no-progress"]) == 2
    assert "in use by another training process" in capsys.readouterr().err
    assert not list_checkpoints(run)


def test_resume_from_the_command_line_needs_only_the_run_folder(built, tmp_path, capsys):
    """`train.py --out RUN --resume` continues with the run's own settings (not default.yaml)."""
    run = tmp_path / "run"
    start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
    quick = ["--set", "train.checkpoint_every=1", "--no-progress"]
    assert train_main([*start, "--set", "train.steps=1", *quick]) == 0
    assert train_main(["--out", str(run), "--resume", "--set", "train.steps=2", *quick]) == 0
    assert newest(run)["step"] == 2
    assert "done:" in capsys.readouterr().out


def test_checkpoints_of_another_config_or_damaged_files_are_refused(built, tmp_path):
    run = tmp_path / "run"
    train(tiny(built, 2), run, progress_bar=False)
    with pytest.raises(CheckpointError, match=r"model.base_channels: checkpoint 8, now 16"):
        train(tiny(built, 4, "model.base_channels=16"), run, resume=True, progress_bar=False)
    # Where the store lives, how fast and how long: may change on resume.
    train(
        tiny(built, 3, "train.log_every=1", "data.num_workers=1"),
        run,
        resume=True,
        progress_bar=False,
    )
    path = list_checkpoints(run)[-1]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"just some bytes")
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(path)


def test_the_run_folder_shows_what_happened(built, tmp_path):
    run = tmp_path / "run"
    meta_path = train(
        tiny(built, 4, "train.keep_checkpoints=2", "train.checkpoint_every=1"),
        run,
        progress_bar=False,
    )
    assert [p.name for p in list_checkpoints(run)] == ["step-000000003.pt", "step-000000004.pt"]
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "train.log", "meta.pt"):
        assert (run / name).is_file(), name
    assert len(list((run / "samples").glob("samples-*.png"))) == 2
    assert list((run / "tensorboard").iterdir())
    logged = (run / "metrics.jsonl").read_text(encoding="utf-8")
    for term in (
        "loss_g/vgg19",
        "loss_g/vggface",
        "loss_g/adversarial",
        "loss_g/feature_matching",
        "loss_g/match",
        "loss_d/hinge",
        "score/real",
        "grad_norm/discriminator",
        "speed/images_per_s",
    ):
        assert term in logged, term
    meta = load_meta_model(meta_path)
    assert meta.config.model.image_size == 64 and len(meta.identity) == 16
    assert meta.step == 4


def test_export_writes_a_small_meta_model_and_loaders_refuse_wrong_files(built, tmp_path):
    run = tmp_path / "run"
    train(tiny(built, 1), run, progress_bar=False)
    out = tmp_path / "exported.pt"
    assert export_main([str(run), "--out", str(out)]) == 0
    checkpoint = list_checkpoints(run)[-1]
    assert out.stat().st_size < 0.6 * checkpoint.stat().st_size  # no W, no optimiser state
    payload = torch.load(out, weights_only=True)
    assert "table" not in payload and "optimizer_g" not in payload
    with pytest.raises(SystemExit):
        export_main([str(run), "--out", str(out)])  # exists: not overwritten without asking
    with pytest.raises(MetaModelError, match="not a meta-model"):
        load_meta_model(checkpoint)
    out.write_bytes(b"\x00" * 100)
    with pytest.raises(MetaModelError, match="not a readable meta-model"):
        load_meta_model(out)


def test_a_tiny_model_learns_to_draw_its_training_targets(built, tmp_path):
    config = tiny(built, 150, "optim.lr_generator=2e-4", "data.flip_probability=0")
    dataset = VoxCelebDataset.from_config(config, "all")
    episodes = [dataset[(i % len(dataset), 1000 + i)] for i in range(8)]
    batch = {key: torch.stack([e[key] for e in episodes]) for key in episodes[0]}

    def l1_and_spread(meta_path: Path) -> tuple[float, float]:
        meta = load_meta_model(meta_path)
        with torch.no_grad():
            e_hat = meta.embedder(batch["frames"], batch["landmark_images"])
            fake = meta.generator(batch["target_landmark_image"], e_hat)
        return float((fake - batch["target_frame"]).abs().mean()), float(
            fake.flatten(1).std(1).min()
        )

    untrained = tiny(built, 1, "optim.lr_generator=0", "optim.lr_discriminator=0")
    before, _ = l1_and_spread(train(untrained, tmp_path / "untrained", progress_bar=False))
    after, spread = l1_and_spread(train(config, tmp_path / "trained", progress_bar=False))
    assert after < 0.75 * before, (before, after)
    assert spread > 0.1  # pictures, not a constant colour


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(built, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny(built, 2, "train.checkpoint_every=2"), run, progress_bar=False)
    import runtime.adversarial_update as update

    original = update.match_term

    def poisoned(*args, **kwargs):
        return original(*args, **kwargs) * float("nan")

    monkeypatch.setattr(update, "match_term", poisoned)
    with pytest.raises(TrainingCollapsed, match="NaN or infinite at step 3"):
        train(tiny(built, 4, "train.checkpoint_every=1"), run, resume=True, progress_bar=False)
    assert [p.name for p in list_checkpoints(run)] == ["step-000000002.pt"]


@pytest.mark.parametrize("way", WAYS)
def test_ctrl_c_finishes_the_step_saves_it_and_resumes_exactly(
    built, tmp_path, monkeypatch, capsys, way
):
    """Ctrl-C (or SIGTERM, what kill, Slurm and docker stop send; before: killed without a
    checkpoint; or the stop file, the app's way on every OS) in the middle of step 3: step 3 is
    finished and saved; resuming to 5 = 5 at once."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    train(tiny(built, 5), straight, progress_bar=False)
    import runtime.adversarial_update as update

    original, calls = update.match_term, []
    stop = stop_file(monkeypatch, tmp_path)

    def ctrl_c_in_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            ask_to_stop(way, stop)
        return original(*args, **kwargs)

    monkeypatch.setattr(update, "match_term", ctrl_c_in_step_3)
    start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
    same = [f"--set={key}" for key in ("train.log_every=2", "train.sample_every=2")]
    assert train_main([*start, *same, "--set", "train.steps=5", "--no-progress"]) == 130
    assert [p.name for p in list_checkpoints(run)] == ["step-000000003.pt"]
    assert f"train.py --out {run} --resume" in capsys.readouterr().err
    monkeypatch.setattr(update, "match_term", original)
    assert train_main(["--out", str(run), "--resume", "--no-progress"]) == 0
    expected, resumed = tensors_of(newest(straight)), tensors_of(newest(run))
    assert [name for name in expected if not torch.equal(expected[name], resumed[name])] == []


def test_flat_generated_frames_set_off_the_collapse_alarm(built, tmp_path, monkeypatch):
    import training.meta

    original = training.meta.MetaLearner.step

    def flat(self, batch, rows, measure):
        result = original(self, batch, rows, measure)
        result.fake = torch.zeros_like(result.fake)  # what a collapse to one colour looks like
        return result

    monkeypatch.setattr(training.meta.MetaLearner, "step", flat)
    config = tiny(built, 20, "train.log_every=1", "train.collapse_checks=3")
    with pytest.raises(TrainingCollapsed, match="flat .* for 3 checks up to step 3"):
        train(config, tmp_path / "run", progress_bar=False)


def test_a_damaged_record_is_replaced_logged_and_counted(built, tmp_path, caplog):
    store = tmp_path / "store"
    shutil.copytree(built.store, store)
    damaged = store / read_manifest(store)[0].path
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated mid-run by a failing disk
    run = tmp_path / "run"
    train(tiny(built, 4, f"data.store={store}", "train.log_every=4"), run, progress_bar=False)
    assert str(damaged) in caplog.text and caplog.text.count(str(damaged)) == 1
    last = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert '"data/replaced_records": ' in last and '"data/replaced_records": 0.0' not in last


def test_a_run_folder_that_cannot_be_made_is_an_error_message(built, tmp_path, capsys):
    (tmp_path / "file").write_text("in the way", encoding="utf-8")
    start = ["--config", "params/tiny.yaml", "--data", str(built.store)]
    assert train_main([*start, "--out", str(tmp_path / "file" / "run"), "--no-progress"]) == 2
    assert f"error: {tmp_path / 'file'}" in capsys.readouterr().err


def test_a_run_that_failed_to_start_can_be_started_again(built, tmp_path, capsys):
    """A setting this machine cannot run (fp16 without CUDA, a missing GPU): a message, and the
    same --out takes the corrected command (before: "exists and is not empty")."""
    run = tmp_path / "run"
    start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
    quick = ["--set", "train.steps=1", "--no-progress"]
    assert train_main([*start, *quick, "--set", "train.precision=fp16"]) == 2
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert train_main([*start, *quick, "--set", "device=cuda:0"]) == 2
        assert "has no CUDA GPU" in capsys.readouterr().err
    assert train_main([*start, *quick]) == 0


def test_a_full_disk_at_a_checkpoint_keeps_the_others_and_says_how_to_resume(
    built, tmp_path, monkeypatch, capsys
):
    """Before: RuntimeError '[enforce fail at inline_container.cc:...] unexpected pos' from
    inside torch's zip writer, which train.py's OSError handler missed."""
    run = tmp_path / "run"
    start = ["--config", "params/tiny.yaml", "--data", str(built.store), "--out", str(run)]
    every_step = ["--set", "train.checkpoint_every=1", "--set", "train.steps=2", "--no-progress"]
    with monkeypatch.context() as patch:
        fill(patch, run / "checkpoints", room=1000, names=".step-000000002.*")  # its temp file
        assert train_main([*start, *every_step]) == 2
    second = run / "checkpoints" / "step-000000002.pt"
    assert capsys.readouterr().err == (
        f"error: {second}: No space left on device: free space, then continue with: "
        f"python train.py --out {run} --resume (its checkpoints are kept)\n"
    )
    assert [path.name for path in (run / "checkpoints").iterdir()] == ["step-000000001.pt"]
