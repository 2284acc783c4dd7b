"""Embedding a person: their frames from photos and videos, cropped as in training, and e_hat.

Photos are cropped one by one (the face box of their own landmarks); videos are tracked and
cropped with the stabilised box over a window of frames, exactly as preprocessing crops
training videos (dataset/preprocess.py: crop_clip), with the same settings. Of all candidate
frames, T are kept, spread over the inputs: the candidates in input order are cut into T
stretches and the sharpest frame of each stretch is taken (variance of the Laplacian), so a
blurred frame of a talking mouth gives way to a sharp one nearby.
"""

from __future__ import annotations

import glob
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset.clips import (
    PreprocessOptions,
    crop_clip,
    describe_dropped,
    keep_main_person,
    sample_positions,
)
from dataset.face import crop_face
from dataset.identity import load_describer
from dataset.landmarks import LandmarkDetector, detector_from_config
from dataset.video import VIDEO_SUFFIXES, VideoReadError, frame_count
from models.meta_model import MetaModel
from models.person_model import PersonModel
from params.config import Config
from person.assemble import Candidate, assemble_person
from utils.folders import is_os_file
from utils.images import IMAGE_SUFFIXES, decode_jpeg, read_image

log = logging.getLogger(__name__)


class NoFaceError(RuntimeError):
    """No input gave a single face; nothing to embed."""


@dataclass
class Collected:
    candidates: list[Candidate] = field(default_factory=list)
    without_face: list[str] = field(default_factory=list)  # photos or frames skipped
    too_small: list[str] = field(default_factory=list)  # "PATH: the face is too small (...)"
    other_person: list[str] = field(default_factory=list)  # "PATH: frames A-B ... another person"
    unreadable: list[str] = field(default_factory=list)
    several_faces: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What the user should know about inputs that were skipped or partly used, one line
        each (embedder_inference.py prints them; the app shows them)."""
        lines = [
            f"warning: several faces in {path}: the largest was used" for path in self.several_faces
        ]
        if self.without_face:
            lines.append(f"skipped {len(self.without_face)} photo(s) or frame(s) without a face")
        lines += [f"  {line}" for line in self.too_small]
        lines += [f"left out: {line}" for line in self.other_person]
        if self.unreadable:
            lines.append(f"skipped unreadable: {', '.join(self.unreadable)}")
        return lines


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files, folders (their photos and videos, sorted) and glob patterns -> files.

    A folder's `._NAME` files (macOS, on shared drives) and the like are not photos.

    An existing path is taken as it is, even when its name holds glob characters
    ("me [1].jpg"); only a name that exists nowhere is expanded as a pattern. A pattern that
    matches nothing stays in the list as itself, so that the caller reports it missing.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            media = [
                p
                for p in path.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not is_os_file(p)
            ]
            paths += sorted(media) or [path]  # an empty folder stays, to be reported by name
        elif not path.exists() and glob.has_magic(str(item)):
            paths += sorted(Path(match) for match in glob.glob(str(item))) or [path]
        else:
            paths.append(path)
    return paths


def _why_missing(path: Path) -> str:
    if path.is_dir():
        return f"{path} (a folder without photos or videos)"
    if glob.has_magic(str(path)):
        return f"{path} (a pattern that matches no file)"
    return f"{path} (no such file)"


def collect_candidates(paths: list[Path], config: Config, detector: LandmarkDetector) -> Collected:
    """Every usable face crop of the inputs, in input order."""
    options = PreprocessOptions.from_config(config, Path())
    collected = Collected()
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            _collect_video(path, config, options, detector, collected)
        else:
            _collect_photo(path, options, detector, collected)
    return collected


def _collect_photo(
    path: Path, options: PreprocessOptions, detector: LandmarkDetector, out: Collected
) -> None:
    try:
        image = read_image(path, options.max_image_pixels)
    except OSError as error:
        out.unreadable.append(str(error))
        return
    points = detector.detect(image)
    if points is None:
        out.without_face.append(str(path))
        if detector.too_small is not None:
            out.too_small.append(f"{path}: {detector.too_small_message()}")
        return
    if detector.faces_seen > 1:
        out.several_faces.append(str(path))
    crop, crop_points, _ = crop_face(image, points, options.crop)
    out.candidates.append(Candidate(crop, crop_points, str(path)))


def _collect_video(
    path: Path,
    config: Config,
    options: PreprocessOptions,
    detector: LandmarkDetector,
    out: Collected,
) -> None:
    try:
        length = frame_count(path)
        wanted = [
            frame for _, frame in sample_positions([length], config.person.candidates_per_video)
        ]
        describe = load_describer() if config.data.identity_check else None
        cropped = crop_clip(path, 0, wanted, length, options, detector, describe)
    except VideoReadError:
        out.unreadable.append(str(path))
        return
    found = {frame.frame for frame in cropped}
    out.without_face += [f"{path}#{frame}" for frame in wanted if frame not in found]
    if describe is not None:
        kept, split = keep_main_person(cropped, options)
        out.other_person += describe_dropped(split, cropped, [str(path)])
        cropped = kept
    for frame in cropped:
        image = decode_jpeg(frame.jpeg)
        out.candidates.append(Candidate(image, frame.landmarks, f"{path}#{frame.frame}"))


def select_frames(candidates: list[Candidate], count: int) -> list[Candidate]:
    """count candidates spread over the list: the sharpest of each of count stretches."""
    if len(candidates) <= count:
        return list(candidates)
    bounds = np.linspace(0, len(candidates), count + 1).round().astype(int)
    return [
        max(candidates[start:stop], key=lambda c: c.sharpness)
        for start, stop in itertools.pairwise(bounds)
        if stop > start
    ]


def person_frames(
    inputs: Iterable[str | Path], config: Config
) -> tuple[list[Candidate], Collected]:
    """The T = person.frames crops (with landmarks) a person model is made of, chosen from every
    face of the inputs, and what was collected; NoFaceError when no input gives a face."""
    paths = expand_inputs(inputs)
    missing = [_why_missing(p) for p in paths if not p.is_file()]
    if not paths or missing:
        raise NoFaceError(f"no such input: {', '.join(missing) or 'none given'}")
    collected = collect_candidates(paths, config, detector_from_config(config))
    if not collected.candidates:
        small = "".join(f"\n  {line}" for line in collected.too_small)
        raise NoFaceError(
            f"no face found in any input ({len(paths)} file(s); {len(collected.without_face)} "
            f"photos or frames without a face, {len(collected.unreadable)} unreadable){small}"
        )
    return select_frames(collected.candidates, config.person.frames), collected


def embed_person(
    meta: MetaModel, inputs: Iterable[str | Path], config: Config
) -> tuple[PersonModel, Collected]:
    """A feed-forward person model from photos and/or videos; NoFaceError if none has a face."""
    chosen, collected = person_frames(inputs, config)
    return assemble_person(meta, chosen), collected
