"""One person per record on cuts between real people: split and false-split rates.

    python -m bench.person_cuts CLIPS_FOLDER --work DIR [--workers N] [--groups G ...] [--write]

From every clip in CLIPS_FOLDER (one person each, e.g. the team's seven real clips) the
evaluation set is built, each video written losslessly (FFV1, .mkv) and as OpenCV's mp4v
(.mp4), 512 px, 25 fps, in a VoxCeleb2-style tree (``<identity>/<video>/00001.<ext>``):

- ``cut``: every ordered pair (A, B) of people: 90 frames of A, a hard cut, then 25, 50 or 75
  frames (1-3 s) of B, the length going round the pairs (42 videos for seven people);
- ``matched``: the same pairs, B's shot made to look like A's: each frame's colours matched to
  A's last frame channel by channel (histogram matching) and B's face moved and scaled onto
  A's face box, so that a pixel shot detector has little to see;
- ``dissolve``: as ``matched``, B's first four frames dissolved in from A's (A's weight 0.8,
  0.6, 0.4, 0.2; a frame shows the person whose weight is larger);
- ``alternate``: each person A with the next, A-B-A-B in shots of 2 s and 1 s (50, 25, 50,
  25 frames), B matched to A;
- ``short``: each person A with the one after the next: 60 frames of A, 10 of B matched to
  A (a cut shorter than a shot detector's 15 frames), 60 of A;
- ``one``: each person alone for 150 frames (head turns, laughing, expressions);
- ``jump``: each person, 90 frames, then a cut to a closer framing (zoomed ZOOM times, as a
  second camera would) later in the same clip, 60 frames: one person across a cut.

A clip shorter than a shot needs is played forwards then backwards (no cut at the turn).
Each tree is preprocessed as a user would (``dataset.preprocess`` with the defaults and
``--frames-per-video 150``: every frame sampled), and the stores are read back:

- records that mix people: videos of two people whose record holds frames of both, and of
  them how many left a stretch out as not surely the same person;
- frames lost: sampled frames of the main person (the first one) missing from the record (left
  out as another person, no face found, or the video skipped), and the videos that lost any;
  for ``one`` and ``jump`` this is the false-split rate.

``--write`` puts the table into bench/RESULTS.md; ``python -m bench.shot_detectors`` measures
the shot detectors on the same set.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.exposure import match_histograms

from bench.results import machine_line, report
from dataset.clips import sample_positions
from dataset.face import CropSettings, face_box
from dataset.landmarks import make_detector
from dataset.preprocess import OTHER_PERSON, preprocess
from dataset.shots import ShotBoundaries
from dataset.store import SKIPPED_DIR, read_record, record_path
from dataset.synthetic import write_video
from dataset.video import VIDEO_SUFFIXES, decode, iter_frames
from params.config import load_config
from utils.folders import is_os_file

SECTION = "bench.person_cuts"
SIDE = 512
FPS = 25
FIRST_SHOT = 90
SECOND_SHOTS = (25, 50, 75)
ALONE = 150
ZOOM = 1.25
DISSOLVE = (0.2, 0.4, 0.6, 0.8)  # B's weight in the dissolve's frames
ALTERNATE = (50, 25, 50, 25)
SHORT = (60, 10, 60)
TRUTH = "truth.json"
CODECS = {"lossless": ".mkv", "mp4v": ".mp4"}  # FFV1 in Matroska, MPEG-4 part 2
GROUPS = ("cut", "matched", "dissolve", "alternate", "short", "one", "jump")
PAIRED = ("cut", "matched", "dissolve", "alternate", "short")  # videos of two people


@dataclass(frozen=True)
class Video:
    """One video of the set: its people frame by frame and where its shots start (the truth)."""

    group: str
    identity: str
    people: tuple[str, ...]  # the person shown in each frame
    boundaries: tuple[int, ...]  # first frame of each shot after the first (a dissolve's middle)

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


class Matcher:
    """Makes a shot of one person look like a shot of another: the same face box (the
    project's own framing, dataset/face.py) and each frame's colours matched to a reference
    frame, channel by channel."""

    def __init__(self) -> None:
        self.detector = make_detector("dlib")
        self.settings = CropSettings.from_config(load_config())

    def box(self, frame: np.ndarray):
        points = self.detector.detect(frame)
        if points is None:
            raise SystemExit("error: no face in a clip's frame; choose clips with a face")
        return face_box(points, self.settings)

    def place(self, frames: list[np.ndarray], reference: np.ndarray) -> list[np.ndarray]:
        """frames moved and scaled so that the first one's face box is the reference's."""
        theirs, mine = self.box(reference), self.box(frames[0])
        scale = theirs.side / mine.side
        matrix = np.array(
            [
                [scale, 0.0, theirs.center_x - scale * mine.center_x],
                [0.0, scale, theirs.center_y - scale * mine.center_y],
            ]
        )
        size = (SIDE, SIDE)
        return [
            cv2.warpAffine(f, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for f in frames
        ]

    def __call__(self, frames: list[np.ndarray], reference: np.ndarray) -> list[np.ndarray]:
        """frames placed on the reference's face box, colours matched to the reference: one
        mapping per channel for the whole shot (the first frame's histogram onto the
        reference's), as a second camera would differ, so that the shot does not flicker."""
        placed = self.place(frames, reference)
        matched = match_histograms(placed[0], reference, channel_axis=-1)
        tables = np.zeros((3, 256), np.uint8)
        for channel in range(3):
            values = placed[0][..., channel].ravel()
            order = np.argsort(values, kind="stable")
            levels = np.clip(matched[..., channel].ravel()[order], 0, 255)
            tables[channel] = np.interp(np.arange(256), values[order], levels).round()
        return [np.stack([tables[c][f[..., c]] for c in range(3)], axis=-1) for f in placed]


def dissolve(before: list[np.ndarray], after: list[np.ndarray]) -> list[np.ndarray]:
    """after's first len(DISSOLVE) frames blended over before's frames at the same times."""
    blended = [
        cv2.addWeighted(a, 1.0 - weight, b, weight, 0.0)
        for a, b, weight in zip(before, after, DISSOLVE, strict=False)
    ]
    return blended + after[len(DISSOLVE) :]


def plan_set(
    clips: dict[str, list[np.ndarray]], groups: tuple[str, ...] = GROUPS
) -> Iterator[tuple[Video, list[np.ndarray]]]:
    """The set's videos one at a time (frames and truth), so that memory holds one video."""
    names = sorted(clips)
    match = Matcher()

    def second(b: str, start: int, count: int, reference: np.ndarray) -> list[np.ndarray]:
        return match(shot(clips[b], start, count), reference)

    for index, (a, b) in enumerate(itertools.permutations(names, 2)):
        length = SECOND_SHOTS[index % len(SECOND_SHOTS)]
        first = shot(clips[a], 0, FIRST_SHOT)
        people = (a,) * FIRST_SHOT + (b,) * length
        later = len(clips[b]) // 3
        if "cut" in groups:
            frames = first + shot(clips[b], later, length)
            yield Video("cut", f"cut_{a}_{b}", people, (FIRST_SHOT,)), frames
        if "matched" in groups:
            frames = first + second(b, later, length, first[-1])
            yield Video("matched", f"matched_{a}_{b}", people, (FIRST_SHOT,)), frames
        if "dissolve" in groups:
            going_on = shot(clips[a], FIRST_SHOT, len(DISSOLVE))
            frames = first + dissolve(going_on, second(b, later, length, first[-1]))
            weights = [*DISSOLVE, *[1.0] * (length - len(DISSOLVE))]
            people = (a,) * FIRST_SHOT + tuple(b if w > 0.5 else a for w in weights)
            middle = FIRST_SHOT + len(DISSOLVE) // 2
            yield Video("dissolve", f"dissolve_{a}_{b}", people, (middle,)), frames
    for index, a in enumerate(names):
        b = names[(index + 1) % len(names)]
        c = names[(index + 2) % len(names)] if len(names) > 2 else b
        if "alternate" in groups:
            frames, people, start = [], (), {a: 0, b: len(clips[b]) // 3}
            for turn, length in enumerate(ALTERNATE):
                who = (a, b)[turn % 2]
                part = shot(clips[who], start[who], length)
                start[who] += length
                frames += match(part, frames[-1]) if who == b else part
                people += (who,) * length
            cuts = tuple(itertools.accumulate(ALTERNATE))[:-1]
            yield Video("alternate", f"alternate_{a}_{b}", people, cuts), frames
        if "short" in groups:
            before, inserted, after = SHORT
            first = shot(clips[a], 0, before)
            frames = first + second(c, len(clips[c]) // 3, inserted, first[-1])
            frames += shot(clips[a], before, after)
            people = (a,) * before + (c,) * inserted + (a,) * after
            yield Video("short", f"short_{a}_{c}", people, (before, before + inserted)), frames
        if "one" in groups:
            yield Video("one", f"one_{a}", (a,) * ALONE, ()), shot(clips[a], 0, ALONE)
        if "jump" in groups:
            later = shot(clips[a], len(clips[a]) // 2 + FIRST_SHOT // 2, 60)
            frames = shot(clips[a], 0, FIRST_SHOT) + [zoom(frame) for frame in later]
            yield Video("jump", f"jump_{a}", (a,) * len(frames), (FIRST_SHOT,)), frames


def video_path(tree: Path, video: Video, codec: str) -> Path:
    return tree / video.identity / "clip" / f"00001{CODECS[codec]}"


def build_set(
    clips: dict[str, list[np.ndarray]], tree: Path, codecs, groups: tuple[str, ...] = GROUPS
) -> list[Video]:
    """Write the set's videos for each codec under tree / codec; returns their truth. A set
    written before with the same groups and codecs is kept (the clips are not compared)."""
    if (tree / TRUTH).exists():
        videos = read_truth(tree)
        paths = [video_path(tree / c, v, c) for v in videos for c in codecs]
        if {v.group for v in videos} == set(groups) and all(p.exists() for p in paths):
            return videos
    videos = []
    for video, frames in plan_set(clips, groups):
        for codec in codecs:
            path = video_path(tree / codec, video, codec)
            write_video(path, frames, FPS, lossless=codec == "lossless")
        videos.append(video)
    truth = [dataclasses.asdict(video) for video in videos]
    (tree / TRUTH).write_text(json.dumps(truth, indent=0), encoding="utf-8")
    return videos


def read_truth(tree: Path) -> list[Video]:
    """The videos build_set wrote under tree, with their truth."""
    path = tree / TRUTH
    if not path.exists():
        raise SystemExit(f"error: no {TRUTH} in {tree}: run python -m bench.person_cuts first")
    return [
        Video(v["group"], v["identity"], tuple(v["people"]), tuple(v["boundaries"]))
        for v in json.loads(path.read_text(encoding="utf-8"))
    ]


def read_log(store: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """From STORE/skipped/: per video, the lines of what was left out as another person, and
    the reason of each video that gave no record."""
    left_out: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for path in (p for p in (store / SKIPPED_DIR).glob("*.tsv") if not is_os_file(p)):
        for line in path.read_text(encoding="utf-8").splitlines():
            key, reason, detail = line.split("\t")
            if reason == OTHER_PERSON:
                left_out.setdefault("/".join(key.split("/")[:2]), []).append(detail)
            elif key.count("/") == 1:
                skipped[key] = f"{reason}: {detail}"
    return left_out, skipped


def evaluate(videos: list[Video], store: Path, frames_per_video: int, found: dict) -> dict:
    """Per video: the people in its record, the main person's sampled frames it lost and the
    cuts the shot detector found; then per group."""
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
                "cuts": len(video.boundaries),
                "cuts_found": found[video.key],
                "left_out": logged.get(video.key, []),
                "skipped": skipped.get(video.key, ""),
            }
        )
    groups = {}
    for group in GROUPS:
        mine = [r for r in rows if r["group"] == group]
        if not mine:
            continue
        mixed = [r for r in mine if len(r["people_in_record"]) > 1]
        groups[group] = {
            "videos": len(mine),
            "cuts": sum(r["cuts"] for r in mine),
            "cuts_found": sum(r["cuts_found"] for r in mine),
            "mixed": [r["video"] for r in mixed],
            "unsure": sum(any("with confidence" in x for x in r["left_out"]) for r in mine),
            "skipped": sum(bool(r["skipped"]) for r in mine),
            "main_frames_lost": sum(r["main_frames_lost"] for r in mine),
            "main_frames": sum(r["main_frames"] for r in mine),
            "videos_losing_frames": sum(r["main_frames_lost"] > 0 for r in mine),
        }
    return {"groups": groups, "rows": rows}


def table(results: dict[str, dict], seconds: dict[str, float], clips: list[str]) -> str:
    lines = [
        "## One person per record on cuts between real people (`python -m bench.person_cuts`)",
        "",
        machine_line(),
        f"Clips: {', '.join(clips)}, each one person; per pair of people: a hard cut (90 frames "
        "of A, 25/50/75 of B), the same with B colour- and framing-matched to A, and matched "
        "with a 4-frame dissolve (42 videos each); per person: A-B-A-B (50/25/50/25, B matched), "
        "a 10-frame matched insert of another person (60 + 10 + 60), alone (150 frames), and "
        f"cut to a {ZOOM}x closer framing of themselves (90 + 60); 512 px, 25 fps. Preprocessed "
        "with the defaults and `--frames-per-video 150` (dlib, identity check on); frames "
        "counted among those sampled; cuts found by the preprocessing's shot detector "
        "(dataset/shots.py) within 3 frames.",
        "",
        "| codec | videos | cuts found by the shot detector | records mixing people "
        "| of the others, an unsure stretch left out | skipped "
        "| main person's frames lost (videos) |",
        "|---|---|---|---|---|---|---|",
    ]
    for codec, result in results.items():
        for group, r in result["groups"].items():
            lines.append(
                f"| {codec} | {group}: {r['videos']} | {r['cuts_found']} / {r['cuts']} "
                f"| {len(r['mixed'])} | {r['unsure']} | {r['skipped']} "
                f"| {r['main_frames_lost']} / {r['main_frames']} "
                f"({r['videos_losing_frames']} / {r['videos']}) |"
            )
    lines.append("")
    for codec, result in results.items():
        videos = sum(r["videos"] for r in result["groups"].values())
        lines.append(
            f"Preprocessing ({codec}, 2 workers): {seconds[codec]:.0f} s for {videos} videos, "
            f"{seconds[codec] / videos:.1f} s per video."
        )
    mixed = sorted({m for r in results.values() for g in r["groups"].values() for m in g["mixed"]})
    lines += ["", f"Records still holding two people: {', '.join(mixed) or 'none'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, help="folder of single-person clips")
    parser.add_argument("--work", type=Path, required=True, help="folder for trees and stores")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--codecs", nargs="+", choices=sorted(CODECS), default=sorted(CODECS))
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    clips = read_clips(args.clips)
    config = load_config()  # the defaults, as a user runs it
    config.data.frames_per_video = ALONE
    videos = build_set(clips, args.work / "trees", args.codecs, tuple(args.groups))
    results, seconds = {}, {}
    for codec in args.codecs:
        tree, store = args.work / "trees" / codec, args.work / f"store_{codec}"
        found = {
            video.key: len(cuts_found(video_path(tree, video, codec), video.boundaries))
            for video in videos
        }
        summary = preprocess(tree, store, config, args.workers)
        seconds[codec] = summary.seconds
        results[codec] = evaluate(videos, store, config.data.frames_per_video, found)
        print(codec, json.dumps(results[codec]["groups"]), flush=True)
    (args.work / "person_cuts.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    report(SECTION, table(results, seconds, sorted(clips)), args.write)
    return 0


def read_clips(folder: Path) -> dict[str, list[np.ndarray]]:
    """The clips of a folder, by name (file stem); at least two."""
    paths = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not is_os_file(p)
    )
    clips = {p.stem: read_frames(p) for p in paths}
    if len(clips) < 2:
        raise SystemExit(f"error: need at least two clips in {folder}")
    return clips


def cuts_found(path: Path, boundaries: tuple[int, ...], tolerance: int = 3) -> list[int]:
    """The boundaries that dataset/shots.py's detector finds within tolerance frames."""
    shots = ShotBoundaries()
    for _ in decode(path, [2**31], preview=shots):  # every frame previewed, none converted
        pass
    return [b for b in boundaries if any(abs(cut - b) <= tolerance for cut in shots.cuts)]


if __name__ == "__main__":
    sys.exit(main())
