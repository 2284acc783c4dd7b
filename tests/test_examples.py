"""The demo that the README's first command runs, on the bundled photos and videos."""

from pathlib import Path

import pytest

from dataset.preprocess import main as preprocess_main
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
