"""Benchmark of the data pipeline; writes its section of bench/RESULTS.md.

    python -m bench.preprocess [--src ROOT] [--videos 8] [--repeats 3]

Measures preprocessing throughput (videos per second, in total and per worker process) with the
default settings and with the crop stabiliser and the identity check switched off (what each
costs per video), landmark time per frame for each backend that loads (full-frame detection and
tracking), the face descriptor's time, rasterisation time per 256 px landmark picture, and
store bytes per video. Without --src it
times VoxCeleb2-like synthetic videos (224 px; VoxCeleb2 dev averages 7.5 clips of about 200
frames per video) of real faces.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.results import machine_line, write_section
from dataset.clips import PreprocessOptions, discover_videos
from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.identity import load_describer
from dataset.landmarks import BACKENDS, DetectorUnavailableError, LandmarkDetector, load_backend
from dataset.preprocess import run_videos
from dataset.store import RECORDS_DIR
from dataset.synthetic import (
    VOXCELEB_SIZE,
    face_pictures,
    moving_clip,
    still_frame,
    synthetic_voxceleb,
)
from params.config import load_config

SECTION = "bench.preprocess"


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of repeats calls, after one warm-up call."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def store_bytes(store: Path) -> int:
    return sum(path.stat().st_size for path in (store / RECORDS_DIR).rglob("*.npz"))


def time_throughput(
    src: Path, workers: int, store: Path, overrides: tuple[str, ...] = ()
) -> tuple[float, float]:
    """(videos per second once the workers run, seconds until the first video) at 256 px.

    The rate is taken between the first and the last finished video, so that process start-up
    (paid once per run, a few seconds) does not hide the per-video cost.
    """
    config = load_config(
        overrides=["model.image_size=256", "data.frames_per_video=32", "device=cpu", *overrides]
    )
    options = PreprocessOptions.from_config(config, store)
    sources = discover_videos(src)
    start = time.perf_counter()
    finished = []
    for outcome in run_videos(sources, options, config, workers):
        assert outcome.reason is None, f"benchmark video skipped: {outcome}"
        finished.append(time.perf_counter())
    return (len(finished) - 1) / (finished[-1] - finished[0]), finished[0] - start


def detect_each(detector: LandmarkDetector, frames: list[np.ndarray]) -> None:
    for frame in frames:
        detector.detect(frame)


def track_clip(detector: LandmarkDetector, frames: list[np.ndarray]) -> None:
    detector.reset()
    for frame in frames:
        detector.track(frame)


def time_landmarks(repeats: int) -> dict[str, str]:
    """Per backend: ms per frame for full detection and for tracking, or why it is unavailable."""
    still, points = still_frame(face_pictures()["astronaut"], VOXCELEB_SIZE)
    voxceleb, _ = moving_clip(still, points, 0, 24)
    webcam = [  # the same face in a 640 x 480 frame
        cv2.copyMakeBorder(frame, 128, 128, 208, 208, cv2.BORDER_REPLICATE) for frame in voxceleb
    ]
    results = {}
    for name in BACKENDS:
        try:
            detector = LandmarkDetector(load_backend(name, "cpu"))
        except DetectorUnavailableError as error:
            results[name] = f"unavailable ({str(error).splitlines()[0]})"
            continue
        timings = []
        for label, frames in (("224 px", voxceleb), ("640x480", webcam)):
            detect = median_seconds(functools.partial(detect_each, detector, frames), repeats)
            tracked = median_seconds(functools.partial(track_clip, detector, frames), repeats)
            timings.append(
                f"{label}: detect {detect / len(frames) * 1e3:.1f} ms, "
                f"tracked {tracked / len(frames) * 1e3:.1f} ms"
            )
        results[name] = "; ".join(timings) + " per frame"
    return results


def time_descriptor(repeats: int) -> float:
    """ms per dlib face descriptor (the identity check's cost per stored frame)."""
    still, points = still_frame(face_pictures()["astronaut"], VOXCELEB_SIZE)
    describe = load_describer()
    return median_seconds(lambda: [describe(still, points) for _ in range(5)], repeats) * 200


def time_picture_and_crop(repeats: int) -> tuple[float, float]:
    """(ms per 256 px landmark picture, ms per 256 px crop of a 224 px frame)."""
    still, points = still_frame(face_pictures()["astronaut"], VOXCELEB_SIZE)
    settings = CropSettings.from_config(load_config(overrides=["model.image_size=256"]))
    _, crop_points, _ = crop_face(still, points, settings)
    draw = median_seconds(lambda: [draw_landmarks(crop_points, 256) for _ in range(100)], repeats)
    crop = median_seconds(lambda: [crop_face(still, points, settings) for _ in range(100)], repeats)
    return draw * 10, crop * 10  # 100 calls: seconds * 1000 / 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, help="videos to time (default: synthetic)")
    parser.add_argument("--videos", type=int, default=8, help="synthetic videos to make")
    parser.add_argument("--clips", type=int, default=7, help="clips per synthetic video")
    parser.add_argument("--clip-frames", type=int, default=200, help="frames per synthetic clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # time one core, like a preprocessing worker
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        src = args.src
        if src is None:
            src = work / "videos"
            synthetic_voxceleb(src, args.videos, args.clips, args.clip_frames)
        plain = ("data.stabilizer_radius=0", "data.identity_check=false")
        single, _ = time_throughput(src, 0, work / "single")
        no_identity, _ = time_throughput(src, 0, work / "a", ("data.identity_check=false",))
        unstabilised, _ = time_throughput(src, 0, work / "b", plain)
        parallel, startup = time_throughput(src, args.workers, work / "parallel")
        records = len(list((work / "parallel" / RECORDS_DIR).rglob("*.npz")))
        size = store_bytes(work / "parallel")
    landmarks = time_landmarks(args.repeats)
    descriptor_ms = time_descriptor(args.repeats)
    picture_ms, crop_ms = time_picture_and_crop(args.repeats)
    source = args.src or (
        f"{args.videos} synthetic 224 px videos of {args.clips} clips x {args.clip_frames} frames"
    )
    lines = [
        "## Data preprocessing (`python -m bench.preprocess`)",
        "",
        machine_line(),
        f"Input: {source}; store at 256 px, 32 frames per video, dlib, JPEG quality 95.",
        f"Per-call times: medians of {args.repeats} runs.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| throughput, 1 process, defaults (stabiliser radius 3, identity check) | "
        f"{single:.2f} videos/s ({1 / single:.2f} s per video) |",
        f"| throughput, 1 process, identity check off | {no_identity:.2f} videos/s "
        f"(the check costs {1 / single - 1 / no_identity:.2f} s per video) |",
        f"| throughput, 1 process, stabiliser and identity check off | {unstabilised:.2f} "
        f"videos/s (the stabiliser's windows cost {1 / no_identity - 1 / unstabilised:.2f} s "
        "per video) |",
        f"| throughput, {args.workers} worker processes, defaults | {parallel:.2f} videos/s "
        f"({parallel / args.workers:.2f} per core); first video after {startup:.1f} s |",
        *(f"| landmarks, {name} | {value} |" for name, value in landmarks.items()),
        f"| face descriptor (dlib ResNet), per stored frame | {descriptor_ms:.1f} ms |",
        f"| landmark picture, 256 px | {picture_ms:.3f} ms |",
        f"| face crop to 256 px | {crop_ms:.3f} ms |",
        f"| store size | {size / max(records, 1) / 1024:.0f} KiB per video "
        f"({size / max(records, 1) / 32 / 1024:.1f} KiB per frame), {records} records |",
    ]
    text = "\n".join(lines)
    write_section(SECTION, text)
    print(text)


if __name__ == "__main__":
    main()
