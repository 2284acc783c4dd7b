"""Drive a person model live from a webcam, a video or an image folder.

    python webcam_inference.py --model PERSON_MODEL [--source 0|VIDEO|FOLDER]
        [--output OUT.mp4] [--virtual-camera] [--no-window] [--side-by-side]
        [--retarget auto|relative|absolute] [--backend torch|onnx] [--compile]

PERSON_MODEL: either kind (embedder_inference.py, fine_tuning_training.py). Keys: q quit, r
recalibrate, s side by side, l landmarks. --output keeps a driving video's timing and sound;
without a display use --no-window. SIGTERM, Ctrl-Break stop like Ctrl-C: what was driven is kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from dataset.landmarks import DetectorUnavailableError
from dataset.video import VideoReadError
from live.pipeline import DriveOptions, drive_source
from live.render import BACKENDS
from live.retarget import MODES
from live.sinks import SinkError
from live.sources import frame_rate
from models.person_model import PersonModelError, load_person_model
from params.config import ConfigError
from runtime.cli import add_run_arguments, refuse_to_overwrite, run_settings, user_error
from runtime.precision import PRECISIONS
from utils.signals import stop_requests_as_ctrl_c

USER_ERRORS = (PersonModelError, ConfigError, SinkError, VideoReadError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="person model")
    parser.add_argument("--source", default="0", help="webcam index, video file or image folder")
    parser.add_argument("--output", type=Path, help="write the result to this video file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--virtual-camera", action="store_true", help="send to a virtual camera")
    parser.add_argument("--no-window", action="store_true", help="no preview window")
    parser.add_argument("--side-by-side", action="store_true", help="driver | landmarks | avatar")
    parser.add_argument("--retarget", choices=MODES, default="auto")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator")
    parser.add_argument("--fps", type=frame_rate, help="source frame rate (default: the source's)")
    add_run_arguments(parser, config_file=False)
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, args.output, args.overwrite, [args.model, args.source])
    if args.no_window and args.output is None and not args.virtual_camera:
        parser.error("--no-window needs --output and/or --virtual-camera: the frames go nowhere")
    options = DriveOptions(
        args.output,
        args.virtual_camera,
        not args.no_window,
        args.side_by_side,
        args.retarget,
        args.backend,
        args.precision,
        args.compile,
        args.fps,
    )
    try:
        person = load_person_model(args.model)
        run = run_settings(person.config, args)
        with stop_requests_as_ctrl_c():
            summary, driver = drive_source(person, run.config, run.device, args.source, options)
    except (*USER_ERRORS, DetectorUnavailableError, OSError) as error:
        return user_error(error)
    print(summary.describe(driver))
    if args.output is not None:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
