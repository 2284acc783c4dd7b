"""Benchmark of face finding by frame size and face size; writes its section of RESULTS.md.

    python -m bench.face_sizes [--frames 60] [--repeats 3]

For each source (640x480 and 1920x1080 webcams with a face of a quarter of the frame's height,
and 1920x1080 with a 60 px face), the median landmark time per frame while tracking (the live
path: ``LandmarkDetector.track`` with the dlib backend) and the share of frames with a face;
for each still photo (4000x3000 with a 216 px face, 8000x6000 with a 400 px face, a 141x182
thumbnail, two people of 300 and 88 px) the time of ``detect`` and what it found. Frames are a
bundled face pasted onto a grey background and moved a little from frame to frame.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from bench.results import machine_line, write_section
from dataset.landmarks import make_detector
from dataset.synthetic import face_pictures, paste_face

SOURCES = {
    "640x480, 120 px face": (640, 480, 120),
    "1920x1080, 270 px face": (1920, 1080, 270),
    "1920x1080, 60 px face": (1920, 1080, 60),
}


def stream(width: int, height: int, face: float, count: int) -> list[np.ndarray]:
    frames = []
    for i in range(count):
        canvas = np.full((height, width, 3), 110, np.uint8)
        x = int(width / 3 + face * 0.05 * np.sin(i / 5.0))
        frames.append(paste_face(canvas, "astronaut", face, x, int(height / 5)))
    return frames


def stills() -> dict[str, np.ndarray]:
    two = np.full((1200, 1600, 3), 110, np.uint8)
    paste_face(two, "astronaut", 300, 100, 200)
    paste_face(two, "grace_hopper", 88, 1200, 400)
    portrait = face_pictures()["astronaut"][0:333, 80:338]  # head and shoulders
    thumbnail = cv2.resize(portrait, (141, 182), interpolation=cv2.INTER_AREA)
    return {
        "4000x3000, 216 px face": paste_face(
            np.full((3000, 4000, 3), 110, np.uint8), "astronaut", 216, 1800, 1200
        ),
        "8000x6000, 400 px face": paste_face(
            np.full((6000, 8000, 3), 110, np.uint8), "grace_hopper", 400, 5000, 1000
        ),
        "141x182 thumbnail": thumbnail,
        "two people, 300 and 88 px": two,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    lines = [
        machine_line(),
        "",
        "| source | ms per frame (median) | frames with a face |",
        "| --- | --- | --- |",
    ]
    for name, (width, height, face) in SOURCES.items():
        frames = stream(width, height, face, args.frames)
        times, found = [], 0
        for _ in range(args.repeats):
            detector = make_detector("dlib")
            for frame in frames:
                start = time.perf_counter()
                found += detector.track(frame) is not None
                times.append((time.perf_counter() - start) * 1e3)
        share = found / (args.repeats * len(frames))
        lines.append(f"| {name} | {statistics.median(times):.1f} | {share:.0%} |")
        print(lines[-1], flush=True)
    lines += ["", "| photo | detect (s) | faces found |", "| --- | --- | --- |"]
    for name, image in stills().items():
        detector = make_detector("dlib")
        start = time.perf_counter()
        points = detector.detect(image)
        seconds = time.perf_counter() - start
        found = 0 if points is None else detector.faces_seen
        lines.append(f"| {name} | {seconds:.2f} | {found} |")
        print(lines[-1], flush=True)
    write_section("face_sizes", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
