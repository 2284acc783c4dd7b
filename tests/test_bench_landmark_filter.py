"""bench.landmark_filter runs on any clips (the real ones are not in the repository)."""

from __future__ import annotations

from pathlib import Path

from random_models import tiny_meta_model
from synthetic_videos import still_frame

from bench.landmark_filter import main
from dataset.synthetic import face_pictures, moving_clip, write_video
from models.meta_model import load_meta_model
from person.embed import embed_person

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "faces" / "astronaut.jpg"


def test_the_benchmark_reports_jitter_and_lag(tmp_path, capsys):
    still, points = still_frame(face_pictures()["grace_hopper"])
    clip = tmp_path / "moving.mp4"
    write_video(clip, moving_clip(still, points, 0, 24)[0])
    meta = load_meta_model(tiny_meta_model(tmp_path / "meta.pt"))
    person, _ = embed_person(meta, [PHOTO], meta.config)
    person.save(tmp_path / "person.pt")
    assert main(["--still", str(clip), str(clip), "--person", str(tmp_path / "person.pt")]) == 0
    said = capsys.readouterr().out
    assert "| still face | motion, raw |" in said and "Worst lag:" in said
    row = next(line for line in said.splitlines() if line.startswith("| moving.mp4 |"))
    assert row.count("|") == 8  # the avatar's change, raw and filtered
