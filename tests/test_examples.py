"""The demo that the README's first command runs, on the bundled photos and videos."""

from pathlib import Path

import pytest

from dataset.preprocess import main as preprocess_main
from dataset.video import iter_frames
from examples.demo import main as demo_main
from examples.forward_pass import main
from utils.images import read_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = ["--config", "params/tiny.yaml"]


def test_forward_pass_on_bundled_photos(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main([*TINY, "--out", str(out)]) == 0
    grid = read_image(out)
    # two faces; columns: source crop, landmark picture, generated, real
    assert grid.shape == (2 * 64, 4 * 64, 3)
    assert grid[:, 64:128].max() > 0  # a landmark picture was drawn
    assert "2 episodes of 1 frame(s) at 64 px" in capsys.readouterr().out
    first = out.read_bytes()
    with pytest.raises(SystemExit):
        main([*TINY, "--out", str(out)])
    assert out.read_bytes() == first  # not overwritten without --overwrite


def test_forward_pass_on_episodes_of_the_bundled_videos(tmp_path, capsys):
    store = tmp_path / "store"
    command = ["--src", str(EXAMPLES / "videos"), "--dst", str(store), "--workers", "0"]
    assert preprocess_main([*command, *TINY]) == 0
    assert "done 2," in capsys.readouterr().out
    out = tmp_path / "episodes.png"
    assert main([*TINY, "--store", str(store), "--out", str(out)]) == 0
    k = 2  # tiny.yaml's data.k_shot
    assert read_image(out).shape == (2 * 64, (k + 3) * 64, 3)


def test_demo_runs_every_stage_and_says_where_its_outputs_are(tmp_path, capsys):
    """The README's first command, shortened: every stage runs and leaves its output."""
    out = tmp_path / "demo"
    quick = [
        "train.steps=3",
        "train.log_every=1",
        "train.sample_every=3",
        "train.checkpoint_every=3",
        "finetune.steps=2",
        "distill.steps=2",
        "distill.poses=8",
        "eval.shots=[1]",
        "eval.holdout_frames=2",
        "data.identity_check=false",
    ]
    assert demo_main(["--out", str(out), *(f"--set={value}" for value in quick)]) == 0
    printed = capsys.readouterr().out
    for command in ("train.py", "embedder_inference.py", "webcam_inference.py", "evaluate.py"):
        assert f"$ python {command}" in printed
    driven = list(iter_frames(out / "driven.mp4"))
    assert len(driven) == 72 and driven[0].shape == (64, 3 * 64, 3)  # driver | picture | avatar
    assert len(list(iter_frames(out / "driven_fast.mp4"))) == 72  # the student drives too
    outputs = ("driven.gif", "run/loss.png", "run/meta.pt", "evaluation/table.md")
    for output in (*outputs, "astronaut_fast_samples.png"):
        assert (out / output).is_file() and str(out / output.split("/")[0]) in printed
    assert "do not give the paper's quality" in printed
    with pytest.raises(SystemExit):  # an earlier demo is kept unless --overwrite
        demo_main(["--out", str(out)])
    assert (out / "driven.mp4").is_file()
    mine = tmp_path / "mine"
    (mine / "notes.txt").parent.mkdir()
    (mine / "notes.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(SystemExit):  # --overwrite replaces only a demo's own folder
        demo_main(["--out", str(mine), "--overwrite"])
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep"
