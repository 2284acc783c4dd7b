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
import logging
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dataset.clips import (
    CroppedFrame,
    PreprocessError,
    PreprocessOptions,
    VideoSource,
    crop_clip,
    describe_dropped,
    discover_videos,
    keep_main_person,
    sample_positions,
)
from dataset.face import CropSettings
from dataset.identity import load_describer
from dataset.landmarks import BACKENDS, GPU_BACKENDS, LandmarkDetector, detector_from_config
from dataset.store import (
    SKIPPED_DIR,
    StoreError,
    StoreSettings,
    VideoRecord,
    check_case_twins,
    ensure_settings,
    in_shard,
    record_path,
    shard_name,
    write_manifest,
    write_record,
)
from dataset.video import VideoReadError, frame_count
from params.config import Config, ConfigError, add_config_arguments, config_from_args, validate
from utils.device import DeviceError, resolve_device
from utils.files import describe_os_error, errors_naming, open_for_append
from utils.folders import is_os_file
from utils.signals import report_stop, stop_requests_as_ctrl_c

SKIP_UNREADABLE = "unreadable"
SKIP_TOO_SHORT = "too_short"
SKIP_TOO_FEW_FACES = "too_few_faces"
SKIP_TOO_FEW_SAME_PERSON = "too_few_same_person"
SKIP_ERROR = "error"
CLIP_UNREADABLE = "clip_unreadable"  # one clip of a video that gave a record all the same
OTHER_PERSON = "other_person_dropped"  # frames of a record's video that show someone else
AGAIN = "run the same command again: finished records are kept"  # after a stop or a full disk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    key: str
    reason: str | None  # None: a record was written
    detail: str = ""
    other_person_frames: int = 0  # frames dropped by the identity check
    other_person: tuple[str, ...] = ()  # "CLIP: frames A-B ... show another person: why"
    unreadable_clips: tuple[tuple[str, str], ...] = ()  # (clip file name, why)


class SkipVideo(Exception):
    """This video gives no record; reason is one of the SKIP_* names."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects I/N, e.g. 0/4; got '{text}'") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return index, count


def _clip_lengths(source: VideoSource) -> tuple[list[int], dict[int, str]]:
    """Frame count of each clip (0 for a clip that does not open) and why clips failed."""
    lengths, failed = [], {}
    for index, clip in enumerate(source.clips):
        try:
            lengths.append(frame_count(clip))
        except VideoReadError as error:
            lengths.append(0)
            failed[index] = str(error)
    if not any(lengths):
        raise SkipVideo(SKIP_UNREADABLE, "; ".join(failed.values()))
    return lengths, failed


def build_record(
    source: VideoSource,
    options: PreprocessOptions,
    detector: LandmarkDetector,
    describe: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
) -> tuple[VideoRecord, int, list[str], dict[int, str]]:
    """Sample, detect, crop, check identity and encode one video's frames; raises SkipVideo.

    Returns the record, the number of frames dropped as another person, a line per dropped
    shot or frame saying why, and the clips that could not be read (index -> why).
    """
    lengths, failed = _clip_lengths(source)
    if sum(lengths) < options.min_face_frames:
        raise SkipVideo(SKIP_TOO_SHORT, f"{sum(lengths)} frames < {options.min_face_frames}")
    by_clip: dict[int, list[int]] = collections.defaultdict(list)
    for clip, frame in sample_positions(lengths, options.frames_per_video):
        by_clip[clip].append(frame)
    frames: list[CroppedFrame] = []
    for clip, wanted in sorted(by_clip.items()):
        try:
            frames += crop_clip(
                source.clips[clip], clip, wanted, lengths[clip], options, detector, describe
            )
        except VideoReadError as error:  # decodes no frame, though its header opened
            failed[clip] = str(error)
    if len(frames) < options.min_face_frames:
        detail = f"{len(frames)} frames with a face < {options.min_face_frames}"
        raise SkipVideo(SKIP_TOO_FEW_FACES, detail)
    dropped: list[str] = []
    sampled = len(frames)
    if describe is not None:
        kept, split = keep_main_person(frames, options)
        dropped = describe_dropped(split, frames, [clip.name for clip in source.clips])
        if len(kept) < options.min_face_frames:
            detail = (
                f"{len(kept)} of {len(frames)} frames show the main person "
                f"< {options.min_face_frames}"
            )
            raise SkipVideo(SKIP_TOO_FEW_SAME_PERSON, detail)
        frames = kept
    record = VideoRecord(
        identity=source.identity,
        video=source.video,
        jpeg_frames=[f.jpeg for f in frames],
        landmarks=np.stack([f.landmarks for f in frames]),
        crop_matrices=np.stack([f.matrix for f in frames]),
        clips=[clip.name for clip in source.clips],
        clip_indices=np.array([f.clip for f in frames]),
        frame_indices=np.array([f.frame for f in frames]),
    )
    return record, sampled - len(frames), dropped, failed


def process_video(
    source: VideoSource,
    options: PreprocessOptions,
    detector: LandmarkDetector,
    describe: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
) -> Outcome:
    """Write one record; any failure of this one video becomes a skip, never a lost run."""
    try:
        record, count, dropped, failed = build_record(source, options, detector, describe)
        write_record(options.store, record)
    except SkipVideo as skip:
        return Outcome(source.key, skip.reason, skip.detail)
    except Exception as error:  # one bad file must not end a run of 145k videos
        last = traceback.format_exception_only(error)[-1].strip()
        return Outcome(source.key, SKIP_ERROR, last)
    clips = tuple((source.clips[index].name, why) for index, why in sorted(failed.items()))
    return Outcome(source.key, None, "", count, tuple(dropped), clips)


@dataclass
class Worker:
    """What one process needs for every video: its detector and descriptor model, built once."""

    detector: LandmarkDetector
    describe: Callable[[np.ndarray, np.ndarray], np.ndarray] | None

    @classmethod
    def from_config(cls, config: Config, device: str | None = None) -> Worker:
        """The worker that config describes, its detector on device (default: config.device)."""
        describe = load_describer() if config.data.identity_check else None
        return cls(detector_from_config(config, device), describe)

    def __call__(self, source: VideoSource, options: PreprocessOptions) -> Outcome:
        return process_video(source, options, self.detector, self.describe)


_worker: Worker | None = None


def worker_devices(config: Config, workers: int) -> list[str]:
    """The device on which each of the worker processes builds its landmark detector.

    A GPU backend (FAN) on an index-less CUDA device ('auto' on a GPU machine, 'cuda') is
    spread round-robin over the visible GPUs, worker i on cuda:(i mod GPUs): otherwise every
    worker puts its own copy of FAN on GPU 0. A device with an index (cuda:1) is where the
    user put every worker; dlib runs on the CPU whatever config.device says.
    """
    if config.data.detector not in GPU_BACKENDS:
        return ["cpu"] * workers
    device = resolve_device(config.device)
    if device.type != "cuda" or device.index is not None:
        return [str(device)] * workers
    return [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]


def _gpu_sharing(devices: list[str], detector: str) -> str | None:
    """'fan detector: 16 workers on 3 GPU(s) (cuda:0 6, cuda:1 5, cuda:2 5)'; None off GPUs."""
    per_gpu = collections.Counter(device for device in devices if device.startswith("cuda"))
    if not per_gpu:
        return None
    shares = ", ".join(f"{gpu} {count}" for gpu, count in sorted(per_gpu.items()))
    return f"{detector} detector: {len(devices)} workers on {len(per_gpu)} GPU(s) ({shares})"


def _start_worker(config: Config, devices: list[str], started: Synchronized) -> None:
    """Pool initializer: one detector per process, built once and reused for every video.

    started counts the processes started so far (a shared integer): the n-th takes the n-th
    device, and a process that replaces one that died takes the next in turn.
    """
    global _worker
    cv2.setNumThreads(1)  # parallelism comes from the processes
    with started.get_lock():
        index = started.value
        started.value += 1
    _worker = Worker.from_config(config, devices[index % len(devices)])


def _process_in_worker(source: VideoSource, options: PreprocessOptions) -> Outcome:
    assert _worker is not None, "worker started without _start_worker"
    return _worker(source, options)


def run_videos(
    sources: list[VideoSource], options: PreprocessOptions, config: Config, workers: int
) -> Iterator[Outcome]:
    """Outcomes as videos finish; workers = 0 runs in this process (debugging, tests)."""
    if workers == 0:
        worker = Worker.from_config(config)
        yield from (worker(source, options) for source in sources)
        return
    # spawn: no CUDA or OpenCV thread state inherited from this process.
    context = multiprocessing.get_context("spawn")
    task = functools.partial(_process_in_worker, options=options)
    devices = worker_devices(config, workers)
    sharing = _gpu_sharing(devices, config.data.detector)
    if sharing is not None:
        log.info(sharing)
    started = context.Value("i", 0)
    with context.Pool(workers, _start_worker, (config, devices, started)) as pool:
        yield from pool.imap_unordered(task, iter(sources), chunksize=1)


def _skipped_file(store: Path, shard: tuple[int, int]) -> Path:
    return store / SKIPPED_DIR / f"{shard_name(shard)}.tsv"


def read_skipped(store: Path) -> dict[str, str]:
    """key -> reason of every video that earlier runs (any shard) skipped."""
    skipped = {}
    for path in sorted(p for p in (store / SKIPPED_DIR).glob("*.tsv") if not is_os_file(p)):
        for line in path.read_text(encoding="utf-8").splitlines():
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
    other_person_frames: int = 0
    unreadable_clips: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"done {self.done}, already in store {self.existing}, "
            f"skipped {sum(self.skipped.values())} ({reasons or 'none'}), "
            f"skipped by earlier runs {self.previously_skipped}; "
            f"frames of another person dropped {self.other_person_frames}, "
            f"unreadable clips {self.unreadable_clips}; {self.seconds:.1f} s"
        )


def check_settings(config: Config) -> None:
    """Settings errors, before anything is written."""
    data = config.data
    if data.detector not in BACKENDS:
        raise PreprocessError(f"unknown detector '{data.detector}' (known: {', '.join(BACKENDS)})")
    if not 1 <= data.min_face_frames <= data.frames_per_video:
        raise PreprocessError(
            f"need 1 <= data.min_face_frames ({data.min_face_frames}) "
            f"<= data.frames_per_video ({data.frames_per_video})"
        )
    if data.stabilizer_radius < 0 or data.redetect_every < 1:
        raise PreprocessError("need data.stabilizer_radius >= 0 and data.redetect_every >= 1")
    try:
        CropSettings.from_config(config)
    except ValueError as error:
        raise PreprocessError(str(error)) from error


def preprocess(
    src: Path,
    store: Path,
    config: Config,
    workers: int,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> Summary:
    """Build or complete this shard's part of the store, then merge the manifest.

    Raises PreprocessError (nothing written) when the settings are wrong or src holds no
    video, StoreError when the store was built with other settings or when videos' names differ
    only in case (check_case_twins; nothing written either).
    """
    start = time.perf_counter()
    check_settings(config)
    found = discover_videos(src)
    check_case_twins(store, [source.key for source in found])
    sources = [source for source in found if in_shard(source.key, shard)]
    options = PreprocessOptions.from_config(config, store)
    ensure_settings(store, StoreSettings.from_config(config))
    summary = Summary()
    skipped_before = read_skipped(store)
    todo = []
    for source in sources:
        if record_path(store, source.identity, source.video).exists():
            summary.existing += 1
        elif skipped_before.get(source.key, SKIP_ERROR) != SKIP_ERROR:  # errors are retried
            summary.previously_skipped += 1
        else:
            todo.append(source)
    skipped_path = _skipped_file(store, shard)
    skipped_path.parent.mkdir(parents=True, exist_ok=True)
    open_for_append(skipped_path).close()  # made (never through a link) before any work

    def log(key: str, reason: str, detail: str) -> None:
        detail = " ".join(detail.split())  # one line, no tabs
        # Opened per line: a write that fails (a full disk) is said naming the log, and leaves
        # no buffered line behind for a later close to fail on.
        with errors_naming(skipped_path), open_for_append(skipped_path) as skipped_log:
            skipped_log.write(f"{key}\t{reason}\t{detail}\n")

    outcomes = run_videos(todo, options, config, workers)
    for outcome in tqdm(outcomes, total=len(todo), unit="video", disable=not progress):
        for clip, why in outcome.unreadable_clips:
            summary.unreadable_clips += 1
            log(f"{outcome.key}/{clip}", CLIP_UNREADABLE, why)
        for line in outcome.other_person:
            log(f"{outcome.key}/{line.split(':')[0]}", OTHER_PERSON, line)
        if outcome.reason is None:
            summary.done += 1
            summary.other_person_frames += outcome.other_person_frames
            continue
        summary.skipped[outcome.reason] += 1
        log(outcome.key, outcome.reason, outcome.detail)
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
    if args.src is None and not args.merge:
        parser.error("--src is required (unless --merge)")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.merge:
            print(f"manifest: {len(write_manifest(args.dst))} records")
            return 0
        config = config_from_args(args)
        _options_into_config(args, config)
        validate(config)
        with stop_requests_as_ctrl_c():
            summary = preprocess(args.src, args.dst, config, args.workers, args.shard)
    except (PreprocessError, StoreError, ConfigError, DeviceError, OSError) as error:
        print(f"error: {describe_os_error(error, AGAIN)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return report_stop(AGAIN)
    print(summary.report())
    if summary.skipped or summary.unreadable_clips:
        print(f"skipped videos and clips, with reasons: {_skipped_file(args.dst, args.shard)}")
    return 1 if summary.done == 0 and summary.skipped.get(SKIP_ERROR) else 0


if __name__ == "__main__":
    sys.exit(main())
