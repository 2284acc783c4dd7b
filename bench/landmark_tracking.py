"""Tracking the face between detections on real footage: time per frame and the points' quality.

    python -m bench.landmark_tracking VIDEO [VIDEO ...] [--sizes 480 240] [--old FILE] [--write]

Each clip is shown as a 640x480 webcam would give it: its frames scaled to SIZE px high in the
middle of the frame (edges repeated), for each of --sizes (480: the face fills the frame's
height, a 200-260 px face box on talking-head clips; 240: half that). Every frame goes to each
way of finding the landmarks (dataset/landmarks.py, dlib backend), in turn and in rotating
order so that all of them see the same load:

- fresh detection: ``LandmarkDetector.detect`` on every frame, the reference;
- --old FILE: the tracker of an older dataset/landmarks.py
  (``git show REV:dataset/landmarks.py > FILE``), with its own backend;
- window every frame: the detector near the box on every frame, the periodic full detection
  at the working scale (``confirm_every=1, coarse_check=False``);
- fixed point: the detector near the box only when a fit disagrees with its box or moved
  fast, and every ``confirm_every`` frames (``coarse_check=False``);
- fixed point + coarse check (the default): the periodic full detection also looks only for
  faces from about the tracked one's size up, in a smaller frame.

"As good" is measured against the fresh detection on the same frame: the mean distance of the
68 points in units of the inter-ocular distance (between the eye centres; mean, p95 and max over
frames, and frames off by more than 0.15), frames where the reference has a face and the way
none (lost) and the other way round (extra), and the still-face jitter: the first frame of each
clip seen 60 times (--still-frames) with fresh Gaussian noise (sigma 3 grey levels, a
webcam's), the mean distance a point moves from frame to frame (px). Time: the landmark stage
per frame (``track`` or ``detect``, from the RGB frame to the points), median and p95 ms, and
the detector runs (window / full). ``--write`` puts the tables into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.results import machine_line, report
from dataset.landmarks import LandmarkDetector, TrackingSettings, load_backend
from dataset.video import iter_frames

SECTION = "bench.landmark_tracking"
WIDTH, HEIGHT = 640, 480
REFERENCE = "fresh detection"
VARIANTS = {
    "window every frame": {"confirm_every": 1, "coarse_check": False},
    "fixed point": {"coarse_check": False},
    "fixed point + coarse check": {},
}
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)
OFF = 0.15  # inter-ocular distances: a point set this far off the reference is a bad frame


def webcam_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """frame scaled to size px high in the middle of a WIDTH x HEIGHT frame, edges repeated."""
    scale = size / frame.shape[0]
    small = cv2.resize(frame, (round(frame.shape[1] * scale), size), interpolation=cv2.INTER_AREA)
    small = small[:, : min(small.shape[1], WIDTH)]
    top, left = (HEIGHT - size) // 2, (WIDTH - small.shape[1]) // 2
    bottom, right = HEIGHT - size - top, WIDTH - small.shape[1] - left
    return cv2.copyMakeBorder(small, top, bottom, left, right, cv2.BORDER_REPLICATE)


def inter_ocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[LEFT_EYE].mean(0) - points[RIGHT_EYE].mean(0)))


def error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean point distance in units of the reference's inter-ocular distance."""
    return float(np.linalg.norm(points - reference, axis=1).mean()) / inter_ocular(reference)


class Counted:
    """A backend that counts its window detections (find_face_near)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.windows = 0

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def find_face_near(self, prepared, box):
        self.windows += 1
        return self.backend.find_face_near(prepared, box)


@dataclass
class Way:
    """One way of finding the landmarks over a stream, and what it gave."""

    detector: LandmarkDetector
    reference: bool = False  # detect every frame afresh instead of tracking
    points: list = field(default_factory=list)  # (68, 2) or None per frame
    times: list[float] = field(default_factory=list)  # ms per frame

    def __call__(self, frame: np.ndarray) -> None:
        start = time.perf_counter()
        points = self.detector.detect(frame) if self.reference else self.detector.track(frame)
        self.times.append((time.perf_counter() - start) * 1e3)
        self.points.append(points)

    def counts(self) -> str:
        if self.reference:
            return ""
        return f"{self.detector.backend.windows} / {self.detector.full_detections}"


def load_old(path: Path) -> Callable[[], Any]:
    """A maker of detectors of an older dataset/landmarks.py, over that file's own backend."""
    spec = importlib.util.spec_from_file_location("old_landmarks", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return lambda: module.LandmarkDetector(Counted(module.load_backend("dlib")))


def makers(old: Path | None) -> dict[str, Callable[[], Way]]:
    settings = TrackingSettings()
    backend = load_backend("dlib")
    found = {REFERENCE: lambda: Way(LandmarkDetector(backend, settings), reference=True)}
    if old is not None:
        old_detector = load_old(old)
        found[f"tracker of {old.name}"] = lambda: Way(old_detector())
    for name, changes in VARIANTS.items():
        variant = replace(settings, **changes)
        found[name] = lambda variant=variant: Way(LandmarkDetector(Counted(backend), variant))
    return found


def run(frames, ways: dict[str, Callable[[], Way]]) -> dict[str, Way]:
    """Each way over the frames; the ways take turns on each frame, in rotating order."""
    started = {name: make() for name, make in ways.items()}
    names = list(started)
    for index, frame in enumerate(frames):
        turn = index % len(names)
        for name in names[turn:] + names[:turn]:
            started[name](frame)
    return started


def jitter(frame: np.ndarray, ways, count: int = 60) -> dict[str, float]:
    """Mean frame-to-frame point motion (px) of each way on a still frame with webcam noise."""
    rng = np.random.default_rng(0)
    noisy = [
        np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]
    motion = {}
    for name, way in run(noisy, ways).items():
        points = [p for p in way.points if p is not None]
        steps = [np.linalg.norm(b - a, axis=1).mean() for a, b in pairwise(points)]
        motion[name] = float(np.mean(steps)) if steps else float("nan")
    return motion


def compare(found, reference) -> tuple[list[float], int, int]:
    """(errors on frames where both have a face, frames lost, extra frames)."""
    errors, lost, extra = [], 0, 0
    for points, truth in zip(found, reference, strict=True):
        if truth is None:
            extra += points is not None
        elif points is None:
            lost += 1
        else:
            errors.append(error(points, truth))
    return errors, lost, extra


def quality(errors: list[float]) -> str:
    """'mean | p95 | max | frames off' of errors, for a table row."""
    if not errors:
        return "- | - | - | 0"
    values = np.asarray(errors)
    return (
        f"{values.mean():.4f} | {np.percentile(values, 95):.4f} | {values.max():.3f} | "
        f"{int((values > OFF).sum())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", type=Path, nargs="+", help="clips of one face each")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[480, 240], help="clip heights in the frame (px)"
    )
    parser.add_argument("--old", type=Path, help="an older dataset/landmarks.py to compare")
    parser.add_argument(
        "--still-frames", type=int, default=60, help="noisy copies of a still frame for jitter"
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    ways = makers(args.old)
    settings = TrackingSettings()
    lines = [
        "## Tracking the face between detections (`python -m bench.landmark_tracking`)",
        "",
        machine_line(),
        "",
        f"Frames: each clip at {' and '.join(map(str, args.sizes))} px high in a {WIDTH}x"
        f"{HEIGHT} frame (edges repeated); the ways take turns on each frame. dlib, a full "
        f"detection every {settings.redetect_every} frames; fixed point: the window detector "
        f"every {settings.confirm_every} frames and when a fit disagrees."
        + (f" Old: the tracker of {args.old.name}." if args.old else "")
        + " Error: mean point distance to the fresh detection on the same frame, in "
        f"inter-ocular distances (mean, p95, max over frames; off: frames above {OFF}); lost: "
        "frames where the fresh detection has a face and the way none (extra: the other way "
        f"round); jitter: mean point motion (px per frame) on the clip's first frame under "
        f"{args.still_frames} draws of webcam noise (sigma 3). Times: the landmark stage, ms "
        "per frame, and the window / full detections run (timings on a shared 2-core machine "
        "may be noisy).",
        "",
        "| clip | size | way | error mean | p95 | max | off | lost / extra | jitter | "
        "median ms | p95 ms | detections |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    totals = {name: {"errors": [], "times": [], "lost": 0, "extra": 0} for name in ways}
    worst = dict.fromkeys(ways, (-1.0, ""))
    for video in args.videos:
        clip = list(iter_frames(video))
        for size in args.sizes:
            frames = [webcam_frame(frame, size) for frame in clip]
            found = run(frames, ways)
            still = jitter(frames[0], ways, args.still_frames)
            for name, way in found.items():
                errors, lost, extra = compare(way.points, found[REFERENCE].points)
                total = totals[name]
                total["errors"] += errors
                total["times"] += way.times
                total["lost"] += lost
                total["extra"] += extra
                mean = float(np.mean(errors)) if errors else 0.0
                worst[name] = max(worst[name], (mean, f"{video.name} at {size} px"))
                lines.append(
                    f"| {video.name} | {size} | {name} | {quality(errors)} | {lost} / {extra} | "
                    f"{still[name]:.2f} | {np.median(way.times):.2f} | "
                    f"{np.percentile(way.times, 95):.2f} | {way.counts()} |"
                )
            print(f"{video.name} at {size} px: {len(frames)} frames", file=sys.stderr)
    lines += [
        "",
        "All clips and sizes together (worst clip: the highest mean error):",
        "",
        "| way | frames | error mean | p95 | max | off | worst clip | lost / extra | "
        "median ms | p95 ms | mean ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, total in totals.items():
        times = total["times"]
        worst_text = "" if name == REFERENCE else f"{worst[name][0]:.4f} ({worst[name][1]})"
        lines.append(
            f"| {name} | {len(times)} | {quality(total['errors'])} | {worst_text} | "
            f"{total['lost']} / {total['extra']} | {np.median(times):.2f} | "
            f"{np.percentile(times, 95):.2f} | {np.mean(times):.2f} |"
        )
    report(SECTION, "\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
