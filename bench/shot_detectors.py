"""Which shot detector finds the cuts of the person-cuts set, and at what price.

    python -m bench.shot_detectors --work DIR [--write]

Reads the trees that ``python -m bench.person_cuts CLIPS --work DIR`` wrote (both codecs, the
truth in ``DIR/trees/truth.json``) and runs each of PySceneDetect's frame-comparing detectors
with its defaults (and ContentDetector at a lower threshold, and the pair that preprocessing
joins) over every video, fed the same
small preview frames as preprocessing (dataset/shots.py). Per detector, codec and group of the
set: the true cuts found within 3 frames, the cuts reported where there is none (a cut
inside a single-person shot splits it: its stretches are then judged apart), and the time per
frame. ThresholdDetector (fades to black) is left out: it does not compare frames.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from bench.person_cuts import CODECS, GROUPS, read_truth, video_path
from bench.results import machine_line, report
from dataset.shots import MIN_SHOT_FRAMES, ShotBoundaries, default_detectors
from dataset.video import decode

SECTION = "bench.shot_detectors"
TOLERANCE = 3  # frames between a reported cut and the true one


def detectors() -> dict[str, list]:
    """Fresh detectors of each kind, by name; the last entry is what preprocessing runs."""
    from scenedetect import detectors as sd

    return {
        "ContentDetector(27)": [sd.ContentDetector(min_scene_len=MIN_SHOT_FRAMES)],
        "ContentDetector(15)": [sd.ContentDetector(threshold=15.0, min_scene_len=MIN_SHOT_FRAMES)],
        "AdaptiveDetector": [sd.AdaptiveDetector(min_scene_len=MIN_SHOT_FRAMES)],
        "HistogramDetector": [sd.HistogramDetector(min_scene_len=MIN_SHOT_FRAMES)],
        "HashDetector": [sd.HashDetector(min_scene_len=MIN_SHOT_FRAMES)],
        "ContentDetector(27) + HistogramDetector (dataset/shots.py)": default_detectors(),
    }


def run_all(path: Path) -> tuple[dict[str, list[int]], dict[str, float], int]:
    """Every detector over one video's previews: cuts and seconds per detector, frames."""
    boundaries = {name: ShotBoundaries(detectors=d) for name, d in detectors().items()}
    seconds = collections.Counter()
    frames = 0

    def feed(index, image):
        nonlocal frames
        frames += 1
        for name, shots in boundaries.items():
            start = time.perf_counter()
            shots(index, image)
            seconds[name] += time.perf_counter() - start

    for _ in decode(path, [2**31], preview=feed):  # every frame previewed, none converted
        pass
    return {name: shots.cuts for name, shots in boundaries.items()}, dict(seconds), frames


def measure(tree: Path, codec: str) -> dict[str, dict[str, collections.Counter]]:
    """detector -> group -> counts (cuts, found, false, videos, frames, seconds)."""
    result: dict = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
    for video in read_truth(tree):
        cuts, seconds, frames = run_all(video_path(tree / codec, video, codec))
        for name, reported in cuts.items():
            near = [any(abs(c - b) <= TOLERANCE for b in video.boundaries) for c in reported]
            counts = result[name][video.group]
            counts["videos"] += 1
            counts["cuts"] += len(video.boundaries)
            counts["found"] += sum(
                any(abs(c - b) <= TOLERANCE for c in reported) for b in video.boundaries
            )
            counts["false"] += near.count(False)
            counts["frames"] += frames
            counts["seconds"] += seconds[name]
    return result


def table(results: dict[str, dict]) -> str:
    groups = [g for g in GROUPS if any(g in r for c in results.values() for r in c.values())]
    lines = [
        "## Shot detectors on the person-cuts set (`python -m bench.shot_detectors`)",
        "",
        machine_line(),
        "PySceneDetect's detectors with their defaults (ContentDetector also at 15), minimum "
        f"shot {MIN_SHOT_FRAMES} frames, fed 256 px previews; true cuts found within "
        f"{TOLERANCE} frames / cuts reported where there is none; groups as in "
        "bench.person_cuts (`one`: single-person clips, where any cut is false).",
        "",
        "| codec | detector | " + " | ".join(groups) + " | ms per frame |",
        "|---|---|" + "---|" * (len(groups) + 1),
    ]
    for codec, by_detector in results.items():
        for name, by_group in by_detector.items():
            cells = []
            for group in groups:
                c = by_group[group]
                cells.append(f"{c['found']} / {c['cuts']}, {c['false']} false")
            frames = sum(c["frames"] for c in by_group.values())
            ms = 1000 * sum(c["seconds"] for c in by_group.values()) / max(frames, 1)
            lines.append(f"| {codec} | {name} | " + " | ".join(cells) + f" | {ms:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="bench.person_cuts' --work")
    parser.add_argument("--codecs", nargs="+", choices=sorted(CODECS), default=sorted(CODECS))
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    tree = args.work / "trees"
    results = {codec: measure(tree, codec) for codec in args.codecs}
    report(SECTION, table(results), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
