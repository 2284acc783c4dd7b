"""Driving a person model frame by frame: camera or file -> landmarks -> crop -> picture -> G.

Per frame (``Driver``): the driver's landmarks (one detector, built once, tracking), filtered
over time (dataset/stabilizer.LandmarkFilter), the causal crop stabiliser and THE crop of
training (dataset/face.py, the person's own crop settings), the retargeting
(live/retarget.py), the landmark picture, the renderer. A frame without a face repeats the
last avatar frame and says so; the run never stops on one. Every stage is timed. ``drive``
runs the loop: every frame of a source through the driver, out to every sink, with the
preview window's keys (q quit, r recalibrate, s side by side, l landmarks). With a fast
generator the loop is pipelined: the next frame is prepared (landmarks to landmark picture,
``Driver.prepare``) in a worker thread while this one is rendered and written
(live/ahead.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from dataset.face import crop_face, draw_landmarks, face_box
from dataset.identity import load_describer
from dataset.landmarks import LandmarkDetector, detector_from_config
from dataset.stabilizer import BoxStabilizer, LandmarkFilter, StabilizerSettings
from dataset.video import VideoReadError
from live.ahead import run_ahead
from live.retarget import Retargeter
from live.sinks import VirtualCameraSink
from live.sources import Frame
from models.person_model import PersonModel
from params.config import Config

STAGES = ("read", "landmarks", "stabilise_crop", "picture", "generate", "write")  # timed, in order
# The loop is pipelined when the generator, given one CPU thread less than the loop has (the
# other core prepares the next frame), takes less than FAST_GENERATOR_MS per frame. On 2 cores
# a 256 px student (about 8 ms on one thread) drew as many frames per second that way for half
# the CPU; a slow generator (256 px G, 200 ms on two threads) is best left all threads, and a
# frame prepared ahead of it would wait a whole generator call, so it runs one stage after
# another (bench/RESULTS.md, bench.drive). Timed on the thread count it then keeps: a compiled
# generator is compiled again for another count. (ONNX Runtime keeps the count it was built
# with.)
FAST_GENERATOR_MS = 15.0
SAME_PERSON = 0.6  # dlib descriptor distance


@dataclass
class Driven:
    """One output frame and what went into it."""

    avatar: np.ndarray  # RGB uint8 (S, S, 3)
    driver: np.ndarray  # the driver's crop (S, S, 3), or the frame resized when no face
    picture: np.ndarray  # the landmark picture the avatar was drawn from
    face: bool  # False: no face in this frame, the avatar repeats


@dataclass
class Prepared:
    """A frame made ready for the generator (Driver.prepare)."""

    frame: Frame
    driver: np.ndarray  # the driver's crop (S, S, 3), or the frame resized when no face
    picture: np.ndarray | None  # the landmark picture (S, S, 3); None: no face


@dataclass
class StageTimes:
    """Milliseconds per stage and frame: wall time, and CPU time of the whole process (every
    thread, user + system: time.process_time), which counts the capture thread's and torch's
    worker threads' work done meanwhile too (and, pipelined, the other stage's). Each thread
    times its own stages (start and lap per thread)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _marks: threading.local = field(default_factory=threading.local)

    def add(self, stage: str, ms: float) -> None:
        """A stage timed elsewhere (reading, in the capture thread): wall time only."""
        self.samples[stage].append(ms)

    def start(self) -> None:
        self._marks.value = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        """stage took the time since this thread's start() or last lap."""
        wall, cpu = self._marks.value
        self.start()
        self.samples[stage].append((self._marks.value[0] - wall) * 1e3)
        self.cpu[stage].append((self._marks.value[1] - cpu) * 1e3)

    def medians(self) -> dict[str, float]:
        return {stage: float(np.median(v)) for stage, v in self.samples.items() if v}

    def cpu_medians(self) -> dict[str, float]:
        return {stage: float(np.median(v)) for stage, v in self.cpu.items() if v}


def resolve_retarget_mode(
    mode: str, person: PersonModel, frame: np.ndarray, landmarks: np.ndarray
) -> str:
    """'auto': absolute when the driver's face is the person's (self-reenactment), else relative."""
    if mode != "auto":
        return mode
    describe = load_describer()
    driver = describe(frame, landmarks)
    images = person.frame_images()
    distances = [
        np.linalg.norm(describe(i, p) - driver)
        for i, p in zip(images, person.landmarks, strict=True)
    ]
    return "absolute" if float(np.median(distances)) < SAME_PERSON else "relative"


class Driver:
    def __init__(
        self,
        person: PersonModel,
        detector: LandmarkDetector,
        renderer,
        retarget: str,
        fps: float,
        stabilizer: StabilizerSettings,
    ) -> None:
        self.person, self.detector, self.renderer = person, detector, renderer
        self.settings = person.crop_settings
        self.stabilizer = BoxStabilizer(stabilizer, fps)
        self.landmark_filter = LandmarkFilter(stabilizer, fps)
        self.retarget_mode = retarget
        self.retargeter: Retargeter | None = None
        self._recalibrate = False  # asked for, done by the next prepare (its thread)
        size = self.settings.size
        self.last = Driven(
            np.zeros((size, size, 3), np.uint8),
            np.zeros((size, size, 3), np.uint8),
            np.zeros((size, size, 3), np.uint8),
            False,
        )
        self.times = StageTimes()

    @classmethod
    def from_config(
        cls, person: PersonModel, config: Config, renderer, retarget: str, fps: float
    ) -> Driver:
        """A driver with the run's landmark detector and live stabiliser settings (data.*);
        DetectorUnavailableError when the detector cannot be loaded."""
        detector = detector_from_config(config)
        return cls(
            person, detector, renderer, retarget, fps, StabilizerSettings.from_config(config)
        )

    def recalibrate(self) -> None:
        """Take the driver's neutral face again, from the next prepared frame on (any thread)."""
        self._recalibrate = True

    def __call__(self, frame: Frame) -> Driven:
        return self.render(self.prepare(frame))

    def prepare(self, frame: Frame) -> Prepared:
        """Landmarks, their filter, the stabilised crop and the landmark picture of a frame."""
        self.times.add("read", frame.read_ms)
        self.times.start()
        points = self.detector.track(frame.image)
        self.times.lap("landmarks")
        if points is None:
            size = self.settings.size
            return Prepared(frame, cv2.resize(frame.image, (size, size)), None)
        if self._recalibrate:  # cleared before it is done: a request meanwhile is kept
            self._recalibrate = False
            if self.retargeter is not None:
                self.retargeter.recalibrate()
        if self.retargeter is None:
            self.retarget_mode = resolve_retarget_mode(
                self.retarget_mode, self.person, frame.image, points
            )
            self.retargeter = Retargeter(self.person.landmarks, self.retarget_mode)
            self.times.start()  # the one-off face comparison is no stage
        points = self.landmark_filter(points, self.detector.track_id)
        box = self.stabilizer(face_box(points, self.settings), self.detector.track_id)
        crop, crop_points, _ = crop_face(frame.image, points, self.settings, box)
        self.times.lap("stabilise_crop")
        picture = draw_landmarks(self.retargeter(crop_points), self.settings.size)
        self.times.lap("picture")
        return Prepared(frame, crop, picture)

    def generator_ms(self) -> float:
        """Milliseconds the renderer takes per frame (median of 3 calls after one to warm
        up) on a landmark picture of the person's own first frame."""
        picture = draw_landmarks(self.person.landmarks[0], self.settings.size)
        self.renderer(picture)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            self.renderer(picture)
            times.append((time.perf_counter() - start) * 1e3)
        return float(np.median(times))

    def render(self, prepared: Prepared) -> Driven:
        """The avatar of a prepared frame; without a face, the last avatar again."""
        if prepared.picture is None:
            self.last = Driven(self.last.avatar, prepared.driver, self.last.picture, False)
            return self.last
        self.times.start()
        avatar = self.renderer(prepared.picture)
        self.times.lap("generate")
        self.last = Driven(avatar, prepared.driver, prepared.picture, True)
        return self.last


def compose(driven: Driven, side_by_side: bool, show_landmarks: bool) -> np.ndarray:
    """The output picture: the avatar, or driver | landmark picture | avatar."""
    avatar = driven.avatar
    if show_landmarks:
        avatar = np.maximum(avatar, driven.picture)
    if side_by_side:
        return np.concatenate([driven.driver, driven.picture, avatar], axis=1)
    return avatar


_BUDGET_LOCK = threading.Lock()
_budget = {"drives": 0, "threads": 0}  # drives running; the thread count the first one found


@contextlib.contextmanager
def _thread_budget() -> Iterator[int]:
    """The CPU thread count a drive starts from, restored in this thread at its end: this
    thread's, or while other drives run, the count the first of them found. torch's count is
    also taken over by threads that have not used torch yet, so a drive starting beside
    another must not take that one's lowered count for its own."""
    with _BUDGET_LOCK:
        if _budget["drives"] == 0:
            _budget["threads"] = torch.get_num_threads()
        _budget["drives"] += 1
        threads = _budget["threads"]
    try:
        yield threads
    finally:
        with _BUDGET_LOCK:
            _budget["drives"] -= 1
        torch.set_num_threads(threads)


@dataclass
class DriveSummary:
    frames: int  # frames driven and written
    seconds: float  # wall time of the loop
    interrupted: bool  # stopped by Ctrl-C or a stop request (utils/signals.py)
    unreadable: list[str] = field(default_factory=list)  # images of a folder source skipped
    cpu_seconds: float = 0.0  # CPU time of the whole process meanwhile (every thread)

    def describe(self, driver: Driver) -> str:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in driver.times.medians().items())
        rate = f"{self.frames / self.seconds:.1f} fps" if self.seconds >= 0.05 else "fps n/a"
        per_frame = 1e3 * self.cpu_seconds / max(self.frames, 1)
        cpu = f", {per_frame:.0f} ms of CPU per frame over all threads" if self.frames else ""
        text = (
            f"{'interrupted; ' if self.interrupted else ''}{self.frames} frames in "
            f"{self.seconds:.1f} s ({rate}{cpu}), "
            f"retargeting {driver.retarget_mode}; median ms per frame: {stages}"
        )
        if self.unreadable:
            text += f"\nskipped {len(self.unreadable)} unreadable image(s): "
            text += ", ".join(self.unreadable)
        return text


def drive(
    source,
    driver: Driver,
    sinks: list,
    window,
    side_by_side: bool,
    on_frame: Callable[[int], None] | None = None,
    pipelined: bool | None = None,
) -> DriveSummary:
    """Every frame of source through driver into every sink and the window (None: no window;
    window.write(picture, frames per second, face found) returns a key's action or None), until
    the source ends, the window's quit, or Ctrl-C (a stop request); on_frame(frames written so
    far) after each frame. pipelined: the next frame is prepared in a worker thread meanwhile
    (live/ahead.py), the generator keeping to one CPU thread less; False: one stage after
    another in this thread; None: pipelined when the generator is fast on one thread less
    (FAST_GENERATOR_MS, Driver.generator_ms). Then the sinks are closed and
    taken out of the list, a video file getting its name only now; a source that gave no frame
    raises VideoReadError, and a camera that is the virtual camera being sent to raises
    SinkError (VirtualCameraSink.check_not_echoed), both leaving the sinks to the caller (to
    discard), as any error of a stage does."""
    side, landmarks, frames, interrupted = side_by_side, False, 0, False
    start, cpu_start = time.perf_counter(), time.process_time()
    with _thread_budget() as threads:
        try:
            torch.set_num_threads(max(1, threads - 1))  # the generator's, pipelined
            if pipelined is None:
                pipelined = driver.generator_ms() < FAST_GENERATOR_MS
            if not pipelined:
                torch.set_num_threads(threads)
            start, cpu_start = time.perf_counter(), time.process_time()
            prepared = (
                run_ahead(source, driver.prepare) if pipelined else map(driver.prepare, source)
            )
            with contextlib.closing(prepared) if pipelined else contextlib.nullcontext():
                for ready in prepared:
                    driven = driver.render(ready)
                    picture = compose(driven, side, landmarks)
                    driver.times.start()
                    for sink in sinks:
                        if source.live and isinstance(sink, VirtualCameraSink):
                            sink.check_not_echoed(ready.frame.image, source.name)
                        sink.write(picture, ready.frame.time)
                    driver.times.lap("write")
                    frames += 1
                    if on_frame is not None:
                        on_frame(frames)
                    if window is not None:
                        fps = frames / (time.perf_counter() - start)
                        action = window.write(picture, fps, driven.face)
                        if action == "quit":
                            break
                        if action == "recalibrate":
                            driver.recalibrate()
                        side ^= action == "side"
                        landmarks ^= action == "landmarks"
        except KeyboardInterrupt:
            interrupted = True
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if frames == 0 and not interrupted:
        raise VideoReadError(f"no frame could be read from {source.name}")
    while sinks:
        sinks.pop(0).close()
    return DriveSummary(frames, seconds, interrupted, list(source.unreadable), cpu_seconds)
