"""One person per record on cuts between real people: split and false-split rates.

    python -m bench.person_cuts CLIPS_FOLDER --work DIR [--workers N] [--write]

From every clip in CLIPS_FOLDER (one person each, e.g. the team's seven real clips) the
evaluation set is built, each video written losslessly (FFV1, .mkv) and as OpenCV's mp4v
(.mp4), 512 px, 25 fps, in a VoxCeleb2-style tree (``<identity>/<video>/00001.<ext>``):

- ``cut``: every ordered pair (A, B) of people: 90 frames of A, a hard cut, then 25, 50 or 75
  frames (1-3 s) of B, the length going round the pairs (42 videos for seven people);
- ``one``: each person alone for 150 frames (head turns, laughing, expressions);
- ``jump``: each person, 90 frames, then a cut to a closer framing (zoomed ZOOM times, as a
  second camera would) later in the same clip, 60 frames: one person across a cut.

A clip shorter than a shot needs is played forwards then backwards (no cut at the turn).
Each tree is preprocessed as a user would (``dataset.preprocess`` with the defaults and
``--frames-per-video 150``: every frame sampled), and the stores are read back:

- split rate: cut videos whose record holds one person only (or that were skipped), and how
  many of them left the second shot out as not surely the same person;
- false-split rate: sampled frames of the ``one`` and of the ``jump`` videos missing from
  their records (left out as another person, no face found, or the video skipped), and the
  videos that lost any;
- the same for the main person's frames in cut videos.

``--write`` puts the table into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.results import machine_line, report
from dataset.clips import sample_positions
from dataset.preprocess import OTHER_PERSON, preprocess
from dataset.store import SKIPPED_DIR, read_record, record_path
from dataset.video import VIDEO_SUFFIXES, iter_frames
from params.config import load_config

SECTION = "bench.person_cuts"
SIDE = 512
FPS = 25
FIRST_SHOT = 90
SECOND_SHOTS = (25, 50, 75)
ALONE = 150
ZOOM = 1.25
CODECS = {"lossless": ("FFV1", ".mkv"), "mp4v": ("mp4v", ".mp4")}


@dataclass(frozen=True)
class Video:
    """One video of the set: its people, frame by frame (the truth)."""

    group: str  # cut, one, jump
    identity: str
    people: tuple[str, ...]  # the person shown in each frame

    @property
    def key(self) -> str:
        return f"{self.identity}/clip"


def read_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, RGB, scaled to SIDE x SIDE."""
    frames = [cv2.resize(f, (SIDE, SIDE), interpolation=cv2.INTER_AREA) for f in iter_frames(path)]
    if not frames:
        raise SystemExit(f"error: no frame in {path}")
    return frames


def shot(frames: list[np.ndarray], start: int, count: int) -> list[np.ndarray]:
    """count frames from start, played back and forth when the clip is too short."""
    cycle = frames + frames[-2:0:-1] if len(frames) > 1 else frames
    return [cycle[(start + i) % len(cycle)] for i in range(count)]


def zoom(frame: np.ndarray, factor: float = ZOOM) -> np.ndarray:
    """The centre of a frame enlarged factor times to the same size: a closer camera."""
    side = round(SIDE / factor)
    start = (SIDE - side) // 2
    crop = frame[start : start + side, start : start + side]
    return cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)


def write_video(path: Path, frames: list[np.ndarray], codec: str) -> None:
    fourcc, _ = CODECS[codec]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (SIDE, SIDE))
    if not writer.isOpened():
        raise SystemExit(f"error: OpenCV cannot write {fourcc} to {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def build_set(clips: dict[str, list[np.ndarray]], tree: Path, codec: str) -> list[Video]:
    """Write the set's videos for one codec under tree; returns their truth."""
    ext = CODECS[codec][1]
    videos: list[tuple[Video, list[np.ndarray]]] = []
    for index, (a, b) in enumerate(itertools.permutations(sorted(clips), 2)):
        second = SECOND_SHOTS[index % len(SECOND_SHOTS)]
        frames = shot(clips[a], 0, FIRST_SHOT) + shot(clips[b], len(clips[b]) // 3, second)
        people = (a,) * FIRST_SHOT + (b,) * second
        videos.append((Video("cut", f"cut_{a}_{b}", people), frames))
    for name, frames in sorted(clips.items()):
        videos.append((Video("one", f"one_{name}", (name,) * ALONE), shot(frames, 0, ALONE)))
        later = shot(frames, len(frames) // 2 + FIRST_SHOT // 2, 60)
        jump = shot(frames, 0, FIRST_SHOT) + [zoom(frame) for frame in later]
        videos.append((Video("jump", f"jump_{name}", (name,) * len(jump)), jump))
    for video, frames in videos:
        write_video(tree / video.identity / "clip" / f"00001{ext}", frames, codec)
    return [video for video, _ in videos]


def read_log(store: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """From STORE/skipped/: per video, the lines of what was left out as another person, and
    the reason of each video that gave no record."""
    left_out: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for path in (store / SKIPPED_DIR).glob("*.tsv"):
        for line in path.read_text().splitlines():
            key, reason, detail = line.split("\t")
            if reason == OTHER_PERSON:
                left_out.setdefault("/".join(key.split("/")[:2]), []).append(detail)
            elif key.count("/") == 1:
                skipped[key] = f"{reason}: {detail}"
    return left_out, skipped


def evaluate(videos: list[Video], store: Path, frames_per_video: int) -> dict:
    """Per video: the people in its record and the main person's sampled frames it lost."""
    logged, skipped = read_log(store)
    rows = []
    for video in videos:
        sampled = [i for _, i in sample_positions([len(video.people)], frames_per_video)]
        main = [i for i in sampled if video.people[i] == video.people[0]]
        path = record_path(store, video.identity, "clip")
        kept = read_record(path).frame_indices.tolist() if path.exists() else []
        rows.append(
            {
                "video": video.key,
                "group": video.group,
                "people_in_record": sorted({video.people[i] for i in kept}),
                "main_frames": len(main),
                "main_frames_lost": len(set(main) - set(kept)),
                "left_out": logged.get(video.key, []),
                "skipped": skipped.get(video.key, ""),
            }
        )
    cuts = [r for r in rows if r["group"] == "cut"]
    result = {
        "cut_videos": len(cuts),
        "cuts_separated": sum(len(r["people_in_record"]) <= 1 for r in cuts),
        "cuts_unsure": sum(any("with confidence" in line for line in r["left_out"]) for r in cuts),
        "cuts_skipped": sum(bool(r["skipped"]) for r in cuts),
        "cut_main_frames_lost": sum(r["main_frames_lost"] for r in cuts),
        "cut_main_frames": sum(r["main_frames"] for r in cuts),
    }
    for group in ("one", "jump"):
        alone = [r for r in rows if r["group"] == group]
        result[f"{group}_videos"] = len(alone)
        result[f"{group}_videos_losing_frames"] = sum(r["main_frames_lost"] > 0 for r in alone)
        result[f"{group}_frames_lost"] = sum(r["main_frames_lost"] for r in alone)
        result[f"{group}_frames"] = sum(r["main_frames"] for r in alone)
    return {
        **result,
        "mixed": [r["video"] for r in cuts if len(r["people_in_record"]) > 1],
        "rows": rows,
    }


def table(results: dict[str, dict], seconds: dict[str, float], clips: list[str]) -> str:
    lines = [
        "## One person per record on cuts between real people (`python -m bench.person_cuts`)",
        "",
        machine_line(),
        f"Clips: {', '.join(clips)}, each one person; 42 cuts (90 frames of A, 25/50/75 of B), "
        f"7 alone (150 frames), 7 cut to a {ZOOM}x closer framing of themselves (90 + 60); "
        "512 px, 25 fps. "
        "Preprocessed with the defaults and `--frames-per-video 150` (dlib, identity check "
        "on); frames counted among those sampled.",
        "",
        "| codec | cuts separated (of them unsure) | cut videos skipped "
        "| main person's frames lost in cuts | one person alone: frames lost (videos) "
        "| one person across a cut: frames lost (videos) | preprocessing, 2 workers |",
        "|---|---|---|---|---|---|---|",
    ]
    for codec, r in results.items():
        lines.append(
            f"| {codec} | {r['cuts_separated']} / {r['cut_videos']} ({r['cuts_unsure']}) "
            f"| {r['cuts_skipped']} | {r['cut_main_frames_lost']} / {r['cut_main_frames']} "
            f"| {r['one_frames_lost']} / {r['one_frames']} "
            f"({r['one_videos_losing_frames']} / {r['one_videos']}) "
            f"| {r['jump_frames_lost']} / {r['jump_frames']} "
            f"({r['jump_videos_losing_frames']} / {r['jump_videos']}) "
            f"| {seconds[codec]:.0f} s |"
        )
    mixed = sorted({m for r in results.values() for m in r["mixed"]})
    lines += ["", f"Records still holding two people: {', '.join(mixed) or 'none'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, help="folder of single-person clips")
    parser.add_argument("--work", type=Path, required=True, help="folder for trees and stores")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--codecs", nargs="+", choices=sorted(CODECS), default=sorted(CODECS))
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.clips.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    clips = {p.stem: read_frames(p) for p in paths}
    if len(clips) < 2:
        raise SystemExit(f"error: need at least two clips in {args.clips}")
    config = load_config()  # the defaults, as a user runs it
    config.data.frames_per_video = ALONE
    results, seconds = {}, {}
    for codec in args.codecs:
        tree, store = args.work / f"tree_{codec}", args.work / f"store_{codec}"
        videos = build_set(clips, tree, codec)
        summary = preprocess(tree, store, config, args.workers)
        seconds[codec] = summary.seconds
        results[codec] = evaluate(videos, store, config.data.frames_per_video)
        print(codec, {k: v for k, v in results[codec].items() if k != "rows"}, flush=True)
    (args.work / "person_cuts.json").write_text(json.dumps(results, indent=1))
    report(SECTION, table(results, seconds, sorted(clips)), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
