"""bench.landmark_tracking runs on any clips (the real ones are not in the repository)."""

from __future__ import annotations

from pathlib import Path

from synthetic_videos import still_frame

from bench.landmark_tracking import main
from dataset.synthetic import face_pictures, moving_clip, write_video

LANDMARKS = Path(__file__).resolve().parents[1] / "dataset" / "landmarks.py"


def test_the_benchmark_compares_tracking_with_fresh_detection(tmp_path, capsys):
    still, points = still_frame(face_pictures()["grace_hopper"])
    clip = tmp_path / "moving.mp4"
    write_video(clip, moving_clip(still, points, 0, 6)[0])
    argv = [str(clip), "--sizes", "240", "--still-frames", "3", "--old", str(LANDMARKS)]
    assert main(argv) == 0
    said = capsys.readouterr().out
    rows = [line for line in said.splitlines() if line.startswith("| moving.mp4 | 240 |")]
    ways = [row.split(" | ")[2] for row in rows]
    assert ways == [
        "fresh detection",
        "tracker of landmarks.py",
        "window every frame",
        "fixed point",
        "fixed point + coarse check",
    ]
    assert all(" | 0 / 0 | " in row for row in rows)  # no frame lost on a clear face
    assert "| fixed point + coarse check | 6 |" in said  # the summary counts every frame
