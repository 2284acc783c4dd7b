"""How much the crop box wobbles on real footage: per-frame boxes against the stabilisers.

    python -m bench.crop_jitter VIDEO [VIDEO ...] [--write]

Every frame of each video is tracked (dataset/landmarks.py, data.* tracking settings) and
framed (dataset/face.py: face_box). Residual jitter is the RMS over frames of the box's
frame-to-frame change minus the change of its own smoothed trajectory (Savitzky-Golay, 9
frames, quadratic), in percent of the crop side: for the scale (log side) and the centre. Real
head motion is in the smoothed trajectory and cancels; detector noise stays. Shown for:

- the old per-frame crop (bounding box of the 68 landmarks, margin 0.25), as a baseline;
- per-frame boxes of the current framing, unstabilised;
- the offline stabiliser (mean over data.stabilizer_radius frames each side), as stored;
- the causal live stabiliser (One Euro), with its lag behind the offline box.

``--write`` puts the table into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from bench.results import machine_line, report
from dataset.face import CropSettings, FaceBox, face_box
from dataset.landmarks import detector_from_config
from dataset.stabilizer import BoxStabilizer, StabilizerSettings, mean_box, window_boxes
from dataset.video import iter_frames, video_fps
from params.config import add_config_arguments, config_from_args

SECTION = "bench.crop_jitter"


def old_box(landmarks: np.ndarray) -> FaceBox:
    """The crop before issue 6: landmark bounding box, side x 1.5, centre 0.1 side up."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    side = float((high - low).max()) * 1.5
    center = (low + high) / 2.0
    return FaceBox(float(center[0]), float(center[1]) - 0.1 * side, side)


def as_array(boxes: list[FaceBox]) -> np.ndarray:
    return np.array([(b.center_x, b.center_y, math.log(b.side)) for b in boxes])


def residual_jitter(boxes: list[FaceBox]) -> tuple[float, float]:
    """(scale, centre) residual jitter in percent of the side; see the module docstring."""
    values = as_array(boxes)
    if len(values) < 9:
        return float("nan"), float("nan")
    smooth = savgol_filter(values, 9, 2, axis=0)
    change = np.diff(values - smooth, axis=0)
    side = np.exp(values[1:, 2])
    scale = float(np.sqrt(np.mean(change[:, 2] ** 2)))
    centre = float(np.sqrt(np.mean(np.sum(change[:, :2] ** 2, axis=1) / side**2)))
    return 100 * scale, 100 * centre


def lag(live: list[FaceBox], offline: list[FaceBox]) -> float:
    """RMS distance of the live box from the offline one, in percent of the side."""
    a, b = as_array(live), as_array(offline)
    centre = np.sum((a[:, :2] - b[:, :2]) ** 2, axis=1) / np.exp(2 * b[:, 2])
    return 100 * float(np.sqrt(np.mean(centre + (a[:, 2] - b[:, 2]) ** 2)))


def measure(video: Path, config) -> dict[str, object]:
    detector = detector_from_config(config)
    settings = CropSettings.from_config(config)
    live = BoxStabilizer(StabilizerSettings.from_config(config), video_fps(video))
    tracked: dict[int, tuple[FaceBox, int]] = {}
    old, live_boxes = [], []
    for index, frame in enumerate(iter_frames(video)):
        points = detector.track(frame)
        if points is None:
            continue
        box = face_box(points, settings)
        tracked[index] = (box, detector.track_id)
        old.append(old_box(points))
        live_boxes.append(live(box, detector.track_id))
    radius = config.data.stabilizer_radius
    offline = [mean_box(window_boxes(tracked, index, radius)) for index in tracked]
    raw = [box for box, _ in tracked.values()]
    return {
        "video": video.name,
        "frames": len(tracked),
        "old": residual_jitter(old),
        "raw": residual_jitter(raw),
        "offline": residual_jitter(offline),
        "live": residual_jitter(live_boxes),
        "lag": lag(live_boxes, offline),
    }


def table(rows: list[dict[str, object]]) -> str:
    def pair(values: tuple[float, float]) -> str:
        return f"{values[0]:.2f} / {values[1]:.2f}"

    lines = [
        "| clip | frames | old crop | per-frame | offline (stored) | live | live lag |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['video']} | {row['frames']} | {pair(row['old'])} | {pair(row['raw'])} | "
            f"{pair(row['offline'])} | {pair(row['live'])} | {row['lag']:.2f} |"
        )
    keys = ("old", "raw", "offline", "live")
    medians = {key: tuple(np.median([row[key] for row in rows], axis=0)) for key in keys}
    lines.append(
        f"| **median** | | {pair(medians['old'])} | {pair(medians['raw'])} | "
        f"{pair(medians['offline'])} | {pair(medians['live'])} | "
        f"{np.median([row['lag'] for row in rows]):.2f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    rows = [measure(video, config) for video in args.videos]
    data = config.data
    body = "\n".join(
        [
            "## Crop jitter on real footage (`python -m bench.crop_jitter VIDEO ...`)",
            "",
            machine_line(),
            f"Residual jitter, scale / centre, in % of the crop side (detector dlib, "
            f"stabilizer_radius {data.stabilizer_radius}, live One Euro min_cutoff "
            f"{data.stabilizer_min_cutoff} Hz, beta {data.stabilizer_beta}); live lag: RMS "
            "distance of the live box from the offline one, % of the side.",
            "",
            table(rows),
        ]
    )
    report(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
