import pytest

from examples.forward_pass import main
from utils.images import read_image


def test_forward_pass_demo_runs_every_stage_on_bundled_faces(tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["--config", "params/tiny.yaml", "--out", str(out)]
    assert main(args) == 0
    grid = read_image(out)
    assert grid.shape == (2 * 64, 3 * 64, 3)  # two faces; crop, landmarks, generated
    assert grid[:, 64:128].max() > 0  # a landmark picture was drawn
    assert "2 faces at 64 px" in capsys.readouterr().out
    first = out.read_bytes()
    with pytest.raises(SystemExit):
        main(args)
    assert out.read_bytes() == first  # not overwritten without --overwrite
