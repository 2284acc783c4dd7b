"""Driving speed: per-stage latency and end-to-end frames per second on a video file.

    python -m bench.drive [--video FILE] [--config params/default.yaml] [--frames 60]
        [--kind teacher|distilled] [--write]

A person model of the config's size (random weights: speed does not depend on them; the
person's frames are the bundled astronaut; ``--kind distilled``: the config's student instead
of G) is driven by a video, by default a 640x480 clip of the bundled Grace Hopper moving (a
webcam's size). For each renderer (fp32; fp32 + torch.compile; bf16 weights; bf16 +
torch.compile; onnxruntime fp32) the generator alone is timed on the config's landmark
pictures, with its difference from fp32 as PSNR, and the whole path (read, landmarks,
stabilise and crop, landmark picture, generate, write an mp4) is run on the video through the
command line's own loop (live/drive.drive), as it runs by default (pipelined, the next frame
prepared while this one is generated, when the generator is fast) and one stage after another:
wall and CPU time per stage (CPU: the whole process, every thread, user + system), CPU per
frame, frames per second.
Then the same frames come as a camera gives them (paced at the video's rate, only the newest
kept) into a virtual-camera-like sink: latency from a frame's capture to its output written
(median, p95), and CPU per frame at the camera's rate. bf16 is worth timing only where the
CPU computes it natively (AVX-512 BF16, AMX).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.results import machine_line, report
from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.landmarks import detector_from_config, make_detector
from dataset.stabilizer import StabilizerSettings
from dataset.synthetic import face_pictures, moving_clip, still_frame, write_video
from live.drive import FAST_GENERATOR_MS, STAGES, Driver, drive
from live.render import OnnxRenderer, TorchRenderer
from live.sinks import VideoFileSink
from live.sources import Frame, FrameSource
from models.person_model import PersonModel, make_network
from params.config import PARAMS_DIR, add_override_argument, load_config
from utils.images import encode_jpeg

SECTION = "bench.drive"
RENDERERS = ("fp32", "fp32+compile", "bf16", "bf16+compile", "onnx-fp32")


def random_person(config, kind: str = "feed-forward") -> PersonModel:
    """A person model with random weights and the astronaut's frames and landmarks (kind
    'distilled': the config's student in place of G)."""
    torch.manual_seed(0)
    generator = make_network(kind, config).eval()
    settings = CropSettings.from_config(config)
    photo = face_pictures()["astronaut"]
    crop, points, _ = crop_face(photo, make_detector("dlib").detect(photo), settings)
    jpeg = encode_jpeg(crop)
    psi = None
    if kind != "distilled":
        with torch.no_grad():
            psi = generator.project(torch.randn(1, config.model.embedding_dim))
    return PersonModel(kind, config, generator, psi, [jpeg], points[None], "random")


def webcam_like_video(path: Path, frames: int) -> Path:
    """A 640x480 clip of the bundled Grace Hopper moving, like a webcam frame."""
    still, points = still_frame(face_pictures()["grace_hopper"], 300)
    clip, _ = moving_clip(still, points, 0, frames)
    padded = [cv2.copyMakeBorder(f, 90, 90, 170, 170, cv2.BORDER_REPLICATE) for f in clip]
    write_video(path, padded, fps=30.0)
    return path


def make(kind: str, person: PersonModel):
    device = torch.device("cpu")
    if kind == "onnx-fp32":
        return OnnxRenderer(person, device, torch.get_num_threads())
    precision = "bf16" if kind.startswith("bf16") else "fp32"
    return TorchRenderer(person, device, precision, compile_model=kind.endswith("compile"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def time_generator(renderer, pictures: list[np.ndarray], reps: int) -> tuple[float, list]:
    outputs = [renderer(p) for p in pictures[:2]]  # warm-up (and compilation)
    times = []
    for i in range(reps):
        start = time.perf_counter()
        out = renderer(pictures[i % len(pictures)])
        times.append((time.perf_counter() - start) * 1e3)
        if i < len(pictures):
            outputs.append(out)
    return statistics.median(times), [renderer(p) for p in pictures[:4]]


def make_driver(renderer, person: PersonModel, config, fps: float) -> Driver:
    return Driver(
        person,
        detector_from_config(config),
        renderer,
        "relative",
        fps,
        StabilizerSettings.from_config(config),
    )


def run_video(
    renderer, person: PersonModel, config, video: Path, out: Path, pipelined: bool | None
) -> dict[str, float]:
    """The video driven into an mp4 by the command line's loop: median wall ms per stage,
    'cpu.STAGE' median CPU ms, 'cpu' CPU ms per frame, 'fps' frames per second."""
    source = FrameSource(str(video))
    driver = make_driver(renderer, person, config, source.fps)
    sinks = [VideoFileSink(out, source.fps)]
    summary = drive(source, driver, sinks, None, False, pipelined=pipelined)
    source.close()
    cpu = {f"cpu.{stage}": ms for stage, ms in driver.times.cpu_medians().items()}
    return {
        **driver.times.medians(),
        **cpu,
        "cpu": 1e3 * summary.cpu_seconds / summary.frames,
        "fps": summary.frames / summary.seconds,
    }


class PacedCamera:
    """The video's frames as a camera delivers them: one every 1/fps seconds of wall time,
    stamped with their capture time (seconds since the start), only the newest kept for the
    reader (live/sources.FrameSource's camera behaviour)."""

    live, name, file, unreadable = False, "paced camera", None, []

    def __init__(self, video: Path) -> None:
        source = FrameSource(str(video))
        self.images, self.fps = [frame.image for frame in source], source.fps
        source.close()
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self.start = time.perf_counter()
        threading.Thread(target=self._capture, daemon=True).start()

    def _capture(self) -> None:
        for index, image in enumerate(self.images):
            time.sleep(max(0.0, self.start + index / self.fps - time.perf_counter()))
            frame = Frame(image, index, 0.0, time.perf_counter() - self.start)
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # the reader fell behind: that frame is dropped
            self._queue.put(frame)
        self._queue.put(None)

    def __iter__(self):
        while (frame := self._queue.get()) is not None:
            yield frame


class LatencySink:
    """A virtual camera's stand-in: takes each output and notes capture-to-written seconds."""

    def __init__(self, camera: PacedCamera) -> None:
        self.camera, self.latencies = camera, []

    def write(self, image: np.ndarray, time_s: float) -> None:
        self.latencies.append(time.perf_counter() - self.camera.start - time_s)

    def close(self) -> None:
        pass


def run_camera(
    renderer, person: PersonModel, config, video: Path, pipelined: bool | None
) -> dict[str, float]:
    """Latency (median and p95 ms), CPU per frame and frames out per second at the camera's
    pace."""
    camera = PacedCamera(video)
    sink = LatencySink(camera)
    driver = make_driver(renderer, person, config, camera.fps)
    summary = drive(camera, driver, [sink], None, False, pipelined=pipelined)
    latencies = 1e3 * np.array(sink.latencies[5:])  # after the first frames' one-off work
    return {
        "latency": float(np.median(latencies)),
        "latency_p95": float(np.percentile(latencies, 95)),
        "cpu": 1e3 * summary.cpu_seconds / summary.frames,
        "fps": summary.frames / summary.seconds,
        "dropped": len(camera.images) - summary.frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="driving video (default: a synthetic 640x480)")
    parser.add_argument("--config", type=Path, default=PARAMS_DIR / "default.yaml")
    add_override_argument(parser)
    parser.add_argument("--frames", type=int, default=60, help="frames of the synthetic video")
    parser.add_argument("--reps", type=int, default=20, help="generator calls timed")
    parser.add_argument("--renderers", nargs="+", choices=RENDERERS, default=list(RENDERERS))
    parser.add_argument(
        "--kind", choices=("teacher", "distilled"), default="teacher", help="G or the student"
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    config = load_config(args.config, ["device=cpu", *args.overrides])
    person = random_person(config, "distilled" if args.kind == "distilled" else "feed-forward")
    size = config.model.image_size
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as work:
        video = args.video or webcam_like_video(Path(work) / "driver.mp4", args.frames)
        detector = make_detector("dlib")
        pictures = []
        source = FrameSource(str(video))
        for frame in source:
            points = detector.track(frame.image)
            if points is not None:
                _, crop_points, _ = crop_face(frame.image, points, person.crop_settings)
                pictures.append(draw_landmarks(crop_points, size))
            if len(pictures) == 8:
                break
        source.close()  # no file left open: Windows would refuse to delete the folder
        for kind in args.renderers:
            renderer = make(kind, person)
            generator_ms, outputs = time_generator(renderer, pictures, args.reps)
            if reference is None:
                reference = outputs
            quality = min(psnr(a, b) for a, b in zip(outputs, reference, strict=True))
            for pipelined in (False, None):
                out = Path(work) / f"{kind}.mp4"
                stages = run_video(renderer, person, config, video, out, pipelined)
                camera = run_camera(renderer, person, config, video, pipelined)
                loop = "default loop" if pipelined is None else "one stage after another"
                label = f"{kind}, {loop}"
                rows.append((label, generator_ms, quality, stages, camera))
                print(label, round(generator_ms, 1), "ms", stages, camera, flush=True)
    lines = [
        "| renderer | generator alone | PSNR vs fp32 | "
        + " | ".join(STAGES)
        + " | CPU per frame | end to end |",
        "|---" * (len(STAGES) + 5) + "|",
    ]
    camera_lines = [
        "| renderer | latency, median | latency, p95 | CPU per frame | frames out | dropped |",
        "|---" * 6 + "|",
    ]
    for kind, generator_ms, quality, stages, camera in rows:
        cells = " | ".join(
            f"{stages.get(s, 0):.1f}"
            + (f" ({stages[f'cpu.{s}']:.1f})" if f"cpu.{s}" in stages else "")
            for s in STAGES
        )
        shown = "same" if quality == float("inf") else f"{quality:.1f} dB"
        lines.append(
            f"| {kind} | {generator_ms:.0f} ms | {shown} | {cells} | {stages['cpu']:.0f} ms | "
            f"{stages['fps']:.1f} fps |"
        )
        camera_lines.append(
            f"| {kind} | {camera['latency']:.0f} ms | {camera['latency_p95']:.0f} ms | "
            f"{camera['cpu']:.0f} ms | {camera['fps']:.1f} fps | {camera['dropped']} |"
        )
    suffix = ".student" if person.distilled else ""
    body = "\n".join(
        [
            f"## Driving (`python -m bench.drive{suffix and ' --kind distilled'}`)",
            "",
            machine_line(),
            f"Person model at {size} px ({'student' if person.distilled else 'G'}, random "
            "weights), driven by "
            f"{args.video or 'a synthetic 640x480 clip of the bundled Grace Hopper'}; "
            f"{torch.get_num_threads()} threads. Generator alone: median of {args.reps} calls; "
            "stages: median wall ms per frame over the whole clip, with the process's CPU ms "
            "(every thread) in brackets (read in a capture thread, so overlapped); CPU per "
            "frame: the whole loop's CPU time / frames; end to end: frames / wall time, "
            "writing an mp4. Default loop: pipelined when the generator takes under "
            f"{FAST_GENERATOR_MS:g} ms on one thread less (live/drive.py); the stages then "
            "overlap, and a stage's CPU includes the other's.",
            "",
            *lines,
            "",
            "As a camera gives them (the clip's frames paced at its rate, only the newest kept), "
            "into a virtual camera's stand-in: capture to written.",
            "",
            *camera_lines,
        ]
    )
    report(f"{SECTION}.{size}{suffix}", body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
