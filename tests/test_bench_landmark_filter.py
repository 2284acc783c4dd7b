"""bench.landmark_filter runs on any clips (the real ones are not in the repository)."""

from __future__ import annotations

from synthetic_videos import still_frame

from bench.landmark_filter import main
from dataset.synthetic import face_pictures, moving_clip, write_video


def test_the_benchmark_reports_jitter_and_lag(tmp_path, capsys):
    still, points = still_frame(face_pictures()["grace_hopper"])
    clip = tmp_path / "moving.mp4"
    write_video(clip, moving_clip(still, points, 0, 24)[0])
    assert main(["--still", str(clip), str(clip)]) == 0
    said = capsys.readouterr().out
    assert "| still face | motion, raw |" in said and "Worst lag:" in said
