"""evaluate.py end to end on a folder of videos of the bundled faces; resuming per video."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from synthetic_videos import built_store, still_frame

from dataset.synthetic import face_pictures, moving_clip, write_video
from evaluate import main as evaluate_main
from evaluation.protocol import VideoFrames, safe_name, split_frames
from params.config import PARAMS_DIR, load_config
from training.loop import train

pytestmark = pytest.mark.filterwarnings("ignore:loss.random_perceptual_networks")


def test_evaluation_writes_the_table_and_resumes_per_video(tmp_path_factory, tmp_path, capsys):
    built = built_store(tmp_path_factory)
    config = load_config(PARAMS_DIR / "tiny.yaml", [f"data.store={built.store}", "train.steps=2"])
    meta = train(config, tmp_path / "run", progress_bar=False)
    videos = tmp_path / "held_out"
    for name in ("astronaut", "grace_hopper"):
        still, points = still_frame(face_pictures()[name])
        write_video(videos / f"{name}.mp4", moving_clip(still, points, 5, 10)[0])
    out = tmp_path / "report"
    command = ["--model", str(meta), "--data", str(videos), "--out", str(out), "--no-progress"]
    command += ["--set", "eval.shots=[1,4]", "--set", "eval.holdout_frames=4"]
    command += ["--set", "finetune.steps=2", "--set", "loss.random_perceptual_networks=true"]
    student = ["eval.distill=true", "distill.steps=2", "distill.poses=8", "distill.widths=[8,16]"]
    command += [arg for value in student for arg in ("--set", value)]
    assert evaluate_main(command) == 0
    table = (out / "table.md").read_text(encoding="utf-8")
    for row in (
        "| feed-forward | 1 |",
        "| feed-forward | 4 |",
        "| fine-tuned | 1 |",
        "| fine-tuned | 4 |",
        "| distilled | 1 |",  # the student of the fine-tuned model, beside its teacher
        "| distilled | 4 |",
    ):
        assert row in table
    assert "(46.1)" in table  # the paper's numbers beside ours
    assert "fid: no Inception weights" in table  # unavailable, with the reason, not a number
    assert re.search(r"\| \d of 8 \|", table)  # frames where dlib found no face, of all 8
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
    cell = results["fine-tuned/T=4"]
    assert cell["frames"] == 8 and cell["videos"] == 2
    assert 0 <= cell["ssim"] <= 1 and cell["psnr"] > 0 and -1 <= cell["csim_dlib"] <= 1
    assert cell["fid"] == {"unavailable": cell["fid"]["unavailable"]}
    assert (out / "grid.png").is_file()
    # A stopped evaluation continues: finished videos are not evaluated again.
    done = sorted((out / "videos").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in done]
    (out / "results.json").unlink()
    assert evaluate_main(command) == 0
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert (out / "results.json").is_file()
    capsys.readouterr()
    # Another model's or other settings' evaluation into this folder is refused, not mixed
    # with these numbers (before: the old numbers reported as the new model's).
    config.seed = 1
    other = train(config, tmp_path / "other_run", progress_bar=False)
    assert evaluate_main([*command[:1], str(other), *command[2:]]) == 2
    assert "holds an evaluation of something else (meta-model:" in capsys.readouterr().err
    assert evaluate_main([*command, "--set", "eval.holdout_frames=3"]) == 2
    assert "settings:" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in done] == stamps
    # A damaged video result is evaluated again (before: BadZipFile after the other videos);
    # a damaged record of what the folder is made from is named.
    config.seed = 0
    frames = done[0].with_suffix(".npz")
    frames.write_bytes(frames.read_bytes()[:100])
    assert evaluate_main(command) == 0
    assert done[0].stat().st_mtime_ns != stamps[0] and done[1].stat().st_mtime_ns == stamps[1]
    (out / "made_from.json").write_text("{bad", encoding="utf-8")
    assert evaluate_main(command) == 2
    assert "made_from.json is damaged" in capsys.readouterr().err


def test_result_names_are_unique_per_video():
    """ "Zoë" and "Zoé" both read "Zo_": one was never evaluated, the other counted twice."""
    names = {safe_name(key) for key in ("Zoë", "Zoé", "Zo_", "Zo?")}
    assert len(names) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)


def test_every_t_is_scored_on_the_same_held_out_frames_and_short_videos_say_so():
    video = VideoFrames("v", [np.zeros((4, 4, 3), np.uint8)] * 64, np.zeros((64, 68, 2)))
    splits = {shots: split_frames(video, shots, holdout=32, most_shots=32) for shots in (1, 8, 32)}
    assert {tuple(held) for _, held in splits.values()} == {tuple(range(32, 64))}
    assert [len(sources) for sources, _ in splits.values()] == [1, 8, 32]
    assert all(max(sources) < 32 for sources, _ in splits.values())  # never a held-out frame
    short = VideoFrames("s", video.frames[:20], video.landmarks[:20])
    sources, held = split_frames(short, 32, holdout=32, most_shots=32)
    assert held == list(range(10, 20)) and len(sources) == 10  # half held out, fewer to embed
