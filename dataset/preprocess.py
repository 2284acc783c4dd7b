"""Turn a tree of videos into the record store: sample frames, find landmarks, crop, write.

    python -m dataset.preprocess --src ROOT --dst STORE [--workers N] [--shard I/N] ...

ROOT is a VoxCeleb2-style tree (ROOT/<identity>/<video id>/<clip>.mp4) and/or a flat folder of
video files (one file = one video = one person). Each video becomes one record; a video that
gives none is listed with its reason under STORE/skipped/ and not tried again (delete that
folder to retry); a video that failed with an unexpected error is retried by the next run.
Runs are resumable and shardable; see docs/DATA.md.
"""

from __future__ import annotations

import argparse
import collections
import functools
import multiprocessing
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dataset.face import CropSettings, crop_face
from dataset.landmarks import BACKENDS, LandmarkDetector, make_detector
from dataset.store import (
    SKIPPED_DIR,
    StoreSettings,
    VideoRecord,
    ensure_settings,
    in_shard,
    record_key,
    record_path,
    shard_name,
    write_manifest,
    write_record,
)
from dataset.video import VIDEO_SUFFIXES, VideoReadError, frame_count, read_frames
from params.config import Config, add_config_arguments, config_from_args

SKIP_UNREADABLE = "unreadable"
SKIP_TOO_SHORT = "too_short"
SKIP_TOO_FEW_FACES = "too_few_faces"
SKIP_ERROR = "error"


@dataclass(frozen=True)
class VideoSource:
    """One video: an identity, a video id and its clips, in order."""

    identity: str
    video: str
    clips: tuple[Path, ...]

    @property
    def key(self) -> str:
        return record_key(self.identity, self.video)


@dataclass(frozen=True)
class Outcome:
    key: str
    reason: str | None  # None: a record was written
    detail: str = ""


@dataclass(frozen=True)
class PreprocessOptions:
    """Everything a worker needs to turn one video into a record."""

    store: Path
    crop: CropSettings
    frames_per_video: int
    min_face_frames: int
    jpeg_quality: int

    @classmethod
    def from_config(cls, config: Config, store: Path) -> PreprocessOptions:
        data = config.data
        return cls(
            store=store,
            crop=CropSettings.from_config(config),
            frames_per_video=data.frames_per_video,
            min_face_frames=data.min_face_frames,
            jpeg_quality=data.jpeg_quality,
        )


class SkipVideo(Exception):
    """This video gives no record; reason is one of the SKIP_* names."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _video_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def discover_videos(root: Path) -> list[VideoSource]:
    """Videos under root: ROOT/<identity>/<video>/<clips> folders and ROOT/<video file>."""
    if not root.is_dir():
        raise FileNotFoundError(f"source folder not found: {root}")
    sources = [VideoSource(path.stem, path.stem, (path,)) for path in _video_files(root)]
    for identity in sorted(p for p in root.iterdir() if p.is_dir()):
        for video in sorted(p for p in identity.iterdir() if p.is_dir()):
            clips = _video_files(video)
            if clips:
                sources.append(VideoSource(identity.name, video.name, tuple(clips)))
    return sources


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects I/N, e.g. 0/4; got '{text}'") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return index, count


def sample_positions(clip_lengths: list[int], count: int) -> list[tuple[int, int]]:
    """count (clip, frame) positions evenly spaced over the clips played one after another."""
    total = sum(clip_lengths)
    chosen = np.unique(np.round(np.linspace(0, total - 1, min(count, total))).astype(int))
    starts = np.cumsum([0, *clip_lengths])
    clips = np.searchsorted(starts, chosen, side="right") - 1
    return [(int(c), int(i - starts[c])) for c, i in zip(clips, chosen, strict=True)]


def _clip_lengths(source: VideoSource) -> list[int]:
    lengths, errors = [], []
    for clip in source.clips:
        try:
            lengths.append(frame_count(clip))
        except VideoReadError as error:
            lengths.append(0)
            errors.append(str(error))
    if not any(lengths):
        raise SkipVideo(SKIP_UNREADABLE, "; ".join(errors))
    return lengths


def build_record(
    source: VideoSource, options: PreprocessOptions, detector: LandmarkDetector
) -> VideoRecord:
    """Sample, detect, crop and encode one video's frames; raises SkipVideo."""
    lengths = _clip_lengths(source)
    if sum(lengths) < options.min_face_frames:
        raise SkipVideo(SKIP_TOO_SHORT, f"{sum(lengths)} frames < {options.min_face_frames}")
    by_clip: dict[int, list[int]] = collections.defaultdict(list)
    for clip, frame in sample_positions(lengths, options.frames_per_video):
        by_clip[clip].append(frame)
    jpegs, landmarks, matrices, clip_indices, frame_indices = [], [], [], [], []
    encode = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]
    for clip, wanted in sorted(by_clip.items()):
        detector.reset()
        try:
            frames = read_frames(source.clips[clip], wanted)
        except VideoReadError:
            continue  # counted below: its frames have no face
        for index, frame in sorted(frames.items()):
            points = detector.track(frame)
            if points is None:
                continue
            crop, crop_points, matrix = crop_face(frame, points, options.crop)
            jpegs.append(cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), encode)[1])
            landmarks.append(crop_points)
            matrices.append(matrix)
            clip_indices.append(clip)
            frame_indices.append(index)
    if len(jpegs) < options.min_face_frames:
        detail = f"{len(jpegs)} frames with a face < {options.min_face_frames}"
        raise SkipVideo(SKIP_TOO_FEW_FACES, detail)
    return VideoRecord(
        identity=source.identity,
        video=source.video,
        jpeg_frames=[jpeg.tobytes() for jpeg in jpegs],
        landmarks=np.stack(landmarks),
        crop_matrices=np.stack(matrices),
        clips=[clip.name for clip in source.clips],
        clip_indices=np.array(clip_indices),
        frame_indices=np.array(frame_indices),
    )


def process_video(
    source: VideoSource, options: PreprocessOptions, detector: LandmarkDetector
) -> Outcome:
    """Write one record; any failure of this one video becomes a skip, never a lost run."""
    try:
        write_record(options.store, build_record(source, options, detector))
    except SkipVideo as skip:
        return Outcome(source.key, skip.reason, skip.detail)
    except Exception as error:  # one bad file must not end a run of 145k videos
        last = traceback.format_exception_only(error)[-1].strip()
        return Outcome(source.key, SKIP_ERROR, last)
    return Outcome(source.key, None)


_worker_detector: LandmarkDetector | None = None


def _start_worker(detector_name: str, device: str) -> None:
    """Pool initializer: one detector per process, built once and reused for every video."""
    global _worker_detector
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _worker_detector = make_detector(detector_name, device)


def _process_in_worker(source: VideoSource, options: PreprocessOptions) -> Outcome:
    assert _worker_detector is not None, "worker started without _start_worker"
    return process_video(source, options, _worker_detector)


def run_videos(
    sources: list[VideoSource], options: PreprocessOptions, detector: str, device: str, workers: int
) -> Iterator[Outcome]:
    """Outcomes as videos finish; workers = 0 runs in this process (debugging, tests)."""
    if workers == 0:
        local_detector = make_detector(detector, device)
        yield from (process_video(source, options, local_detector) for source in sources)
        return
    # spawn: no CUDA or OpenCV thread state inherited from this process.
    context = multiprocessing.get_context("spawn")
    task = functools.partial(_process_in_worker, options=options)
    with context.Pool(workers, _start_worker, (detector, device)) as pool:
        yield from pool.imap_unordered(task, iter(sources), chunksize=1)


def _skipped_file(store: Path, shard: tuple[int, int]) -> Path:
    return store / SKIPPED_DIR / f"{shard_name(shard)}.tsv"


def read_skipped(store: Path) -> dict[str, str]:
    """key -> reason of every video that earlier runs (any shard) skipped."""
    skipped = {}
    for path in sorted((store / SKIPPED_DIR).glob("*.tsv")):
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 3:  # a line cut by a killed run is ignored
                skipped[fields[0]] = fields[1]
    return skipped


@dataclass
class Summary:
    """What one run did; skipped counts videos by reason."""

    done: int = 0
    existing: int = 0
    previously_skipped: int = 0
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    def report(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"done {self.done}, already in store {self.existing}, "
            f"skipped {sum(self.skipped.values())} ({reasons or 'none'}), "
            f"skipped by earlier runs {self.previously_skipped}, {self.seconds:.1f} s"
        )


def preprocess(
    src: Path,
    store: Path,
    config: Config,
    workers: int,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> Summary:
    """Build or complete this shard's part of the store, then merge the manifest."""
    start = time.perf_counter()
    data = config.data
    if data.detector not in BACKENDS:
        raise ValueError(f"unknown detector '{data.detector}' (known: {', '.join(BACKENDS)})")
    if not 1 <= data.min_face_frames <= data.frames_per_video:
        raise ValueError(
            f"need 1 <= data.min_face_frames ({data.min_face_frames}) "
            f"<= data.frames_per_video ({data.frames_per_video})"
        )
    options = PreprocessOptions.from_config(config, store)
    ensure_settings(store, StoreSettings.from_config(config))
    summary = Summary()
    skipped_before = read_skipped(store)
    todo = []
    for source in discover_videos(src):
        if not in_shard(source.key, shard):
            continue
        if record_path(store, source.identity, source.video).exists():
            summary.existing += 1
        elif skipped_before.get(source.key, SKIP_ERROR) != SKIP_ERROR:  # errors are retried
            summary.previously_skipped += 1
        else:
            todo.append(source)
    skipped_path = _skipped_file(store, shard)
    skipped_path.parent.mkdir(parents=True, exist_ok=True)
    outcomes = run_videos(todo, options, data.detector, config.device, workers)
    with skipped_path.open("a") as skipped_log:
        for outcome in tqdm(outcomes, total=len(todo), unit="video", disable=not progress):
            if outcome.reason is None:
                summary.done += 1
                continue
            summary.skipped[outcome.reason] += 1
            detail = " ".join(outcome.detail.split())  # one line, no tabs
            skipped_log.write(f"{outcome.key}\t{outcome.reason}\t{detail}\n")
            skipped_log.flush()
    write_manifest(store, shard)
    summary.seconds = time.perf_counter() - start
    return summary


def _options_into_config(args: argparse.Namespace, config: Config) -> None:
    """The shortcut options win over --config and --set."""
    if args.size is not None:
        config.model.image_size = args.size
    if args.frames_per_video is not None:
        config.data.frames_per_video = args.frames_per_video
    if args.detector is not None:
        config.data.detector = args.detector


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, help="VoxCeleb2-style tree or folder of videos")
    parser.add_argument("--dst", type=Path, required=True, help="store folder (created)")
    parser.add_argument(
        "--workers",
        type=int,
        default=multiprocessing.cpu_count(),
        help="worker processes, 0 = in this process (default: all cores)",
    )
    parser.add_argument("--frames-per-video", type=int, help="default: data.frames_per_video")
    parser.add_argument("--detector", choices=BACKENDS, help="default: data.detector")
    parser.add_argument("--size", type=int, help="crop size; default: model.image_size")
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="I/N",
        help="do only shard I (0-based) of N; the N shards (any machines) fill one store",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="only rescan every record into one manifest (e.g. after copying trees together)",
    )
    add_config_arguments(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    if args.merge:
        print(f"manifest: {len(write_manifest(args.dst))} records")
        return 0
    if args.src is None:
        parser.error("--src is required (unless --merge)")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    config = config_from_args(args)
    _options_into_config(args, config)
    summary = preprocess(args.src, args.dst, config, args.workers, args.shard)
    print(summary.report())
    if summary.skipped:
        print(f"skipped videos and reasons: {_skipped_file(args.dst, args.shard)}")
    return 1 if summary.done == 0 and summary.skipped.get(SKIP_ERROR) else 0


if __name__ == "__main__":
    sys.exit(main())
