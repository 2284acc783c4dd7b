"""Benchmark of the data pipeline; writes its section of bench/RESULTS.md.

    python -m bench.preprocess [--src ROOT] [--videos 8] [--repeats 3]

Measures preprocessing throughput (videos per second, in total and per worker process),
landmark time per frame for each backend that loads (full-frame detection and tracking),
rasterisation time per 256 px landmark picture, and store bytes per video. Without --src it
times VoxCeleb2-like synthetic videos (224 px; VoxCeleb2 dev averages 7.5 clips of about 200
frames per video) of real faces.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.landmarks import BACKENDS, DetectorUnavailableError, LandmarkDetector, load_backend
from dataset.preprocess import PreprocessOptions, discover_videos, run_videos
from dataset.store import RECORDS_DIR
from dataset.synthetic import (
    VOXCELEB_SIZE,
    face_pictures,
    moving_clip,
    still_frame,
    synthetic_voxceleb,
)
from params.config import load_config
from utils.files import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION_START = "<!-- bench.preprocess:start -->"
SECTION_END = "<!-- bench.preprocess:end -->"


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


def time_throughput(src: Path, workers: int, store: Path) -> tuple[float, float]:
    """(videos per second once the workers run, seconds until the first video) at 256 px.

    The rate is taken between the first and the last finished video, so that process start-up
    (paid once per run, a few seconds) does not hide the per-video cost.
    """
    config = load_config(overrides=["model.image_size=256", "data.frames_per_video=32"])
    options = PreprocessOptions.from_config(config, store)
    sources = discover_videos(src)
    start = time.perf_counter()
    finished = []
    for outcome in run_videos(sources, options, "dlib", "cpu", workers):
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
            detector = LandmarkDetector(load_backend(name))
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


def time_picture_and_crop(repeats: int) -> tuple[float, float]:
    """(ms per 256 px landmark picture, ms per 256 px crop of a 224 px frame)."""
    still, points = still_frame(face_pictures()["astronaut"], VOXCELEB_SIZE)
    settings = CropSettings(256, 0.25, 0.1)
    _, crop_points, _ = crop_face(still, points, settings)
    draw = median_seconds(lambda: [draw_landmarks(crop_points, 256) for _ in range(100)], repeats)
    crop = median_seconds(lambda: [crop_face(still, points, settings) for _ in range(100)], repeats)
    return draw * 10, crop * 10  # 100 calls: seconds * 1000 / 100


def machine_info() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    import dlib
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, GPU {gpu}; Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, dlib {dlib.__version__}, torch {torch.__version__}"
    )


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md (other sections stay as they are)."""
    section = f"{SECTION_START}\n{text.strip()}\n{SECTION_END}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_bytes(RESULTS, updated.encode())


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
        single, _ = time_throughput(src, 0, work / "single")
        parallel, startup = time_throughput(src, args.workers, work / "parallel")
        records = len(list((work / "parallel" / RECORDS_DIR).rglob("*.npz")))
        size = store_bytes(work / "parallel")
    landmarks = time_landmarks(args.repeats)
    picture_ms, crop_ms = time_picture_and_crop(args.repeats)
    source = args.src or (
        f"{args.videos} synthetic 224 px videos of {args.clips} clips x {args.clip_frames} frames"
    )
    lines = [
        "## Data preprocessing (`python -m bench.preprocess`)",
        "",
        f"Machine: {machine_info()}.",
        f"Input: {source}; store at 256 px, 32 frames per video, dlib, JPEG quality 95.",
        f"Per-call times: medians of {args.repeats} runs.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| throughput, 1 process | {single:.2f} videos/s |",
        f"| throughput, {args.workers} worker processes | {parallel:.2f} videos/s "
        f"({parallel / args.workers:.2f} per core); first video after {startup:.1f} s |",
        *(f"| landmarks, {name} | {value} |" for name, value in landmarks.items()),
        f"| landmark picture, 256 px | {picture_ms:.3f} ms |",
        f"| face crop to 256 px | {crop_ms:.3f} ms |",
        f"| store size | {size / max(records, 1) / 1024:.0f} KiB per video "
        f"({size / max(records, 1) / 32 / 1024:.1f} KiB per frame), {records} records |",
    ]
    text = "\n".join(lines)
    write_section(text)
    print(text)


if __name__ == "__main__":
    main()
