"""Drive a person model live from a webcam, a video or an image folder.

    python webcam_inference.py --model PERSON_MODEL [--source 0|VIDEO|FOLDER]
        [--output OUT.mp4] [--virtual-camera] [--no-window] [--side-by-side]
        [--retarget auto|relative|absolute] [--backend torch|onnx] [--compile]

PERSON_MODEL: a person model of either kind (embedder_inference.py, fine_tuning_training.py).
Window keys: q quit, r recalibrate (take the driver's neutral face again), s side by side,
l landmarks. Without a display: --no-window with --output and/or --virtual-camera.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from avatar.drive import Driver, compose, overlay
from avatar.person import PersonModelError, load_person_model
from avatar.render import BACKENDS, make_renderer
from avatar.retarget import MODES
from avatar.sinks import SinkError, VideoFileSink, VirtualCameraSink, WindowSink
from avatar.sources import FrameSource
from dataset.landmarks import DetectorUnavailableError, detector_from_config
from dataset.stabilizer import StabilizerSettings
from dataset.video import VideoReadError
from params.config import (
    RUN_SETTINGS_HELP,
    ConfigError,
    add_override_argument,
    with_run_settings,
)
from training.precision import PRECISIONS
from utils.device import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="person model")
    parser.add_argument("--source", default="0", help="webcam index, video file or image folder")
    parser.add_argument("--output", type=Path, help="write the result to this mp4")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--virtual-camera", action="store_true", help="send to a virtual camera")
    parser.add_argument("--no-window", action="store_true", help="no preview window")
    parser.add_argument("--side-by-side", action="store_true", help="driver | landmarks | avatar")
    parser.add_argument("--retarget", choices=MODES, default="auto")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--fps", type=float, help="source frame rate (default: the source's)")
    add_override_argument(parser, RUN_SETTINGS_HELP)
    args = parser.parse_args(argv)
    if args.output is not None and args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    if args.no_window and args.output is None and not args.virtual_camera:
        parser.error("--no-window needs --output and/or --virtual-camera: the frames go nowhere")
    sinks, source, driver, frames, seconds = [], None, None, 0, 0.0
    try:
        person = load_person_model(args.model)
        config = with_run_settings(person.config, None, args.overrides)
        device = resolve_device(config.device)
        person.to(device)
        renderer = make_renderer(person, args.backend, device, args.precision, args.compile)
        detector = detector_from_config(config)
        source = FrameSource(args.source, args.fps)
        window = None if args.no_window else WindowSink()
        size = person.config.model.image_size
        width = size * (3 if args.side_by_side else 1)
        if args.output is not None:
            sinks.append(VideoFileSink(args.output, source.fps))
        if args.virtual_camera:
            sinks.append(VirtualCameraSink(width, size, source.fps))
        driver = Driver(
            person,
            detector,
            renderer,
            args.retarget,
            source.fps,
            StabilizerSettings.from_config(config),
        )
        side, landmarks, start = args.side_by_side, False, time.perf_counter()
        for frame in source:
            driven = driver(frame)
            picture = compose(driven, side, landmarks)
            written = time.perf_counter()
            for sink in sinks:
                sink.write(picture)
            driver.times.add("write", (time.perf_counter() - written) * 1e3)
            frames += 1
            if window is not None:
                fps = frames / (time.perf_counter() - start)
                action = window.write(overlay(picture, fps, driven.face))
                if action == "quit":
                    break
                if action == "recalibrate":
                    driver.recalibrate()
                side, landmarks = side ^ (action == "side"), landmarks ^ (action == "landmarks")
        seconds = time.perf_counter() - start
    except (
        PersonModelError,
        ConfigError,
        SinkError,
        VideoReadError,
        DetectorUnavailableError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        for sink in sinks:
            sink.close()
        if source is not None:
            source.close()
    if driver is not None:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in driver.times.medians().items())
        print(
            f"{frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} fps), "
            f"retargeting {driver.retarget_mode}; median ms per frame: {stages}"
        )
    if args.output is not None:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
