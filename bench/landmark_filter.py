"""The live landmark filter on real footage: jitter on a still face, lag on fast motion.

    python -m bench.landmark_filter --still VIDEO [--still VIDEO ...] VIDEO [VIDEO ...]
        [--person PERSON_MODEL] [--write]

Jitter: the first frame of each --still video, 640 px wide, seen 60 times with fresh Gaussian noise
(sigma 3 grey levels, a webcam's), tracked (dataset/landmarks.py) and filtered as live driving
does (dataset/stabilizer.LandmarkFilter): the mean distance a landmark moves from frame to
frame, in frame pixels, and the mean absolute change of the 256 px landmark picture the
generator would get (grey levels per pixel and frame), raw and filtered; with --person, also
the mean absolute change of the avatar that person model draws from those pictures (at its
own size).

Lag, on each VIDEO's own frames: the time shift (quarter frames, linearly interpolated) of the
raw landmarks that best matches the filtered ones, over the frames with the fastest quarter of
motion, for all 68 points and for the mouth's 20 (expressions). Reported per video, and the
worst. ``--write`` puts the table into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.results import machine_line, report
from dataset.face import draw_landmarks
from dataset.landmarks import detector_from_config
from dataset.stabilizer import LandmarkFilter, StabilizerSettings
from dataset.video import iter_frames, video_fps
from live.render import make_renderer
from models.person_model import load_person_model
from params.config import add_config_arguments, config_from_args

SECTION = "bench.landmark_filter"
MOUTH = slice(48, 68)


def tracked(frames, config) -> list[tuple[np.ndarray, int]]:
    """(landmarks, track id) of every frame with a face, as live driving tracks them."""
    detector = detector_from_config(config)
    found = []
    for frame in frames:
        points = detector.track(frame)
        if points is not None:
            found.append((np.asarray(points, np.float64), detector.track_id))
    return found


def filtered(found, settings: StabilizerSettings, fps: float) -> list[np.ndarray]:
    landmarks = LandmarkFilter(settings, fps)
    return [np.asarray(landmarks(points, track), np.float64) for points, track in found]


def motion(points: list[np.ndarray]) -> float:
    return float(np.mean([np.linalg.norm(b - a, axis=1).mean() for a, b in pairwise(points)]))


def landmark_pictures(points: list[np.ndarray], size: int = 256) -> list[np.ndarray]:
    """Landmark pictures drawn in the points' common box."""
    low, high = np.stack(points).min(axis=(0, 1)), np.stack(points).max(axis=(0, 1))
    scale = 0.8 * size / float((high - low).max())
    return [draw_landmarks((p - low) * scale + 0.1 * size, size) for p in points]


def change(images: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change, grey levels per pixel and frame."""
    return float(np.mean([np.abs(b.astype(int) - a).mean() for a, b in pairwise(images)]))


def lag(raw: list[np.ndarray], smooth: list[np.ndarray], points: slice = slice(None)) -> float:
    """Frames by which smooth trails raw on the fastest quarter of frames."""
    raw_points, smooth_points = np.stack(raw)[:, points], np.stack(smooth)[:, points]
    speed = np.linalg.norm(np.diff(raw_points, axis=0), axis=2).mean(axis=1)
    fast = np.where(speed > np.percentile(speed, 75))[0] + 1
    fast = fast[fast >= 4]
    errors = {}
    for shift in np.arange(0.0, 4.01, 0.25):
        lower = np.floor(fast - shift).astype(int)
        weight = ((fast - shift) - lower)[:, None, None]
        upper = np.minimum(lower + 1, len(raw_points) - 1)
        shifted = raw_points[lower] * (1 - weight) + raw_points[upper] * weight
        errors[shift] = np.linalg.norm(smooth_points[fast] - shifted, axis=2).mean()
    return float(min(errors, key=errors.get))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--still", type=Path, action="append", required=True, help="its first frame: a still face"
    )
    parser.add_argument("videos", type=Path, nargs="+", help="videos with fast motion")
    parser.add_argument("--person", type=Path, help="a person model: its avatar's change too")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    settings = StabilizerSettings.from_config(config)
    render, avatar_size = None, 0
    if args.person is not None:
        person = load_person_model(args.person)
        render = make_renderer(person, "torch", torch.device("cpu"), "fp32", False)
        avatar_size = person.config.model.image_size
    lines = [
        "## Live landmark filter (`python -m bench.landmark_filter`)",
        "",
        machine_line(),
        "",
        f"Settings: One Euro, min cutoff {settings.landmark_min_cutoff} Hz, beta "
        f"{settings.landmark_beta} (speeds in face radii per second). Still face: the first "
        "frame of a clip at 640 px wide, 60 frames of Gaussian noise (sigma 3 levels) at 30 "
        "frames/s: landmark motion (px per frame) and the 256 px landmark picture's change "
        "(levels per pixel and frame).",
        "",
        "| still face | motion, raw | motion, filtered | picture change, raw | filtered |"
        + (" avatar change, raw | filtered |" if render else ""),
        "| --- | --- | --- | --- | --- |" + (" --- | --- |" if render else ""),
    ]
    if render:
        lines.insert(-2, f"Avatar: {args.person.name}, {avatar_size} px.\n")
    rng = np.random.default_rng(0)
    for video in args.still:
        first = next(iter_frames(video))
        first = cv2.resize(first, (640, round(640 * first.shape[0] / first.shape[1])))
        noise = (rng.normal(0, 3, first.shape) for _ in range(60))
        noisy = (np.clip(first + sigma, 0, 255).astype(np.uint8) for sigma in noise)
        raw = [points for points, _ in tracked(noisy, config)]
        smooth = filtered([(points, 1) for points in raw], settings, 30.0)[10:]
        row = (
            f"| {video.name} | {motion(raw):.2f} | {motion(smooth):.2f} | "
            f"{change(landmark_pictures(raw)):.2f} | {change(landmark_pictures(smooth)):.2f} |"
        )
        if render:
            for points in (raw[10:], smooth):
                avatars = [render(p) for p in landmark_pictures(points, avatar_size)]
                row += f" {change(avatars):.2f} |"
        lines.append(row)
    lines += [
        "",
        "Lag on each clip's fastest quarter of frames (frames; all points / mouth):",
        "",
        "| clip | fps | frames with a face | lag, all points | lag, mouth |",
        "| --- | --- | --- | --- | --- |",
    ]
    worst = 0.0
    for video in args.videos:
        fps = video_fps(video)
        found = tracked(iter_frames(video), config)
        raw = [points for points, _ in found]
        smooth = filtered(found, settings, fps)
        lags = lag(raw, smooth), lag(raw, smooth, MOUTH)
        worst = max(worst, *lags)
        lines.append(f"| {video.name} | {fps:g} | {len(found)} | {lags[0]:.2f} | {lags[1]:.2f} |")
    lines += ["", f"Worst lag: {worst:.2f} frames."]
    report(SECTION, "\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
