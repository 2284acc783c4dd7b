"""One driving run, set up and torn down: a person model, a source, the sinks (webcam_inference.py
and the app's Drive tab both run this, so they make the same video from the same inputs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from live.drive import Driver, DriveSummary, drive
from live.render import make_renderer
from live.sinks import WindowSink, open_sinks
from live.sources import FrameSource
from models.person_model import PersonModel
from params.config import Config


@dataclass
class DriveOptions:
    """How to drive: what webcam_inference.py's options say (see its --help)."""

    output: Path | None = None  # a video file (.mp4, .mov, .mkv), written atomically
    virtual_camera: bool = False
    window: bool = False
    side_by_side: bool = False  # driver | landmarks | avatar
    retarget: str = "auto"  # live/retarget.py MODES
    backend: str = "torch"  # live/render.py BACKENDS
    precision: str = "auto"
    compile: bool = False
    fps: float | None = None  # the source's frame rate when None


def drive_source(
    person: PersonModel,
    config: Config,
    device: torch.device,
    source_name: str,
    options: DriveOptions,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[DriveSummary, Driver]:
    """Drive person from source_name (webcam index, video file, image folder) into the sinks
    options ask for; on_frame(frames written so far) after each frame.

    Raises SinkError (an output that cannot be written), VideoReadError (a source that cannot
    be read or gives no frame), DetectorUnavailableError, ConfigError, OSError; whatever the
    error, no half-written output is left and the source is closed. Ctrl-C (or a stop request
    inside utils.signals.stop_requests_as_ctrl_c) ends the run with what was driven kept."""
    sinks, source = [], None
    try:
        person.to(device)
        renderer = make_renderer(
            person, options.backend, device, options.precision, options.compile
        )
        source = FrameSource(source_name, options.fps)
        size = person.config.model.image_size
        shape = (size * (3 if options.side_by_side else 1), size)
        sinks = open_sinks(options.output, options.virtual_camera, shape, source.fps, source.file)
        driver = Driver.from_config(person, config, renderer, options.retarget, source.fps)
        window = WindowSink() if options.window else None
        summary = drive(source, driver, sinks, window, options.side_by_side, on_frame)
        return summary, driver  # drive closed the sinks and emptied the list
    finally:
        for sink in sinks:  # left open only by an error: no half files
            sink.discard()
        if source is not None:
            source.close()
