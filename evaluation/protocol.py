"""The paper's self-reenactment protocol (SPEC section 5) on held-out people.

For each video: its frames in time order; the last ``eval.holdout_frames`` are held out, the
others are the pool the person's T frames are taken from (spread evenly). For each T in
``eval.shots``: a feed-forward person model from the T frames (and, with ``eval.finetune``, a
fine-tuned one; with ``eval.distill``, a student distilled from the fine-tuned one, else the
feed-forward one, on poses of its T frames: person/distill.py), then every held-out frame
generated from its own landmarks and compared with the real frame. Frames come from a store's
validation split (identities never trained on) or from a folder of videos, cropped exactly as
in training. Each finished video's results are written at once, so a stopped evaluation
continues where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from dataset.clips import (
    PreprocessOptions,
    crop_clip,
    describe_dropped,
    discover_videos,
    keep_main_person,
    sample_positions,
)
from dataset.face import draw_landmarks
from dataset.identity import load_describer
from dataset.landmarks import detector_from_config, make_detector
from dataset.store import SETTINGS_NAME, read_manifest, read_record, read_settings, split_of
from dataset.value_range import image_to_tensor, tensor_to_image
from dataset.video import VideoReadError, frame_count
from metrics import Unavailable
from metrics.identity import ArcFaceIdentity, DlibIdentity, csim
from metrics.image import Lpips, psnr, ssim
from metrics.landmarks import akd
from models.meta_model import MetaModel
from models.person_model import PersonModel
from params.config import Config, to_dict
from person.assemble import Candidate, assemble_person
from person.distill import distilled_in_memory
from person.finetune import tuned_in_memory
from runtime.precision import Precision
from utils.files import atomic_write, atomic_write_bytes
from utils.images import decode_jpeg, save_image

log = logging.getLogger(__name__)
MODES = ("feed-forward", "fine-tuned", "distilled")


@dataclass
class VideoFrames:
    key: str
    frames: list[np.ndarray]  # RGB uint8 crops, in time order
    landmarks: np.ndarray  # (N, 68, 2) crop coordinates


def store_videos(store: Path, config: Config) -> list[VideoFrames]:
    """The store's validation split: identities no training run of this store has seen."""
    read_settings(store)
    fraction = config.data.validation_fraction
    videos = []
    for entry in read_manifest(store):
        if split_of(entry.identity, fraction) != "validation":
            continue
        record = read_record(store / entry.path)
        order = np.lexsort((record.frame_indices, record.clip_indices))
        frames = [decode_jpeg(record.jpeg_frames[i]) for i in order]
        videos.append(VideoFrames(entry.key, frames, record.landmarks[order]))
    return videos


def folder_videos(folder: Path, config: Config, count: int) -> list[VideoFrames]:
    """count frames of each video of a folder, cropped with the stabiliser as in training."""
    detector = detector_from_config(config)
    describe = load_describer() if config.data.identity_check else None
    videos = []
    for source in discover_videos(folder):
        video = clip_frames(source.clips[0], source.key, config, count, detector, describe)
        if video is not None:
            videos.append(video)
    return videos


def clip_frames(
    path: Path, key: str, config: Config, count: int, detector, describe
) -> VideoFrames | None:
    """count frames spread over one video, cropped with the stabiliser as in training (frames
    of another person left out when describe is given); None when it is unreadable or fewer
    than 2 frames have a face."""
    options = PreprocessOptions.from_config(config, path.parent)
    try:
        length = frame_count(path)
    except VideoReadError:
        return None
    wanted = [frame for _, frame in sample_positions([length], count)]
    cropped = crop_clip(path, 0, wanted, length, options, detector, describe)
    if describe is not None:
        kept, split = keep_main_person(cropped, options)
        for line in describe_dropped(split, cropped, [path.name]):
            log.warning("%s: left out %s", key, line)
        cropped = kept
    if len(cropped) < 2:
        return None
    frames = [decode_jpeg(c.jpeg) for c in cropped]
    return VideoFrames(key, frames, np.stack([c.landmarks for c in cropped]))


def load_videos(data: Path, config: Config) -> list[VideoFrames]:
    needed = max(config.eval.shots) + config.eval.holdout_frames
    videos = (
        store_videos(data, config)
        if (data / SETTINGS_NAME).exists()
        else folder_videos(data, config, needed)
    )
    if config.eval.max_videos > 0:
        videos = videos[: config.eval.max_videos]
    return videos


def split_frames(
    video: VideoFrames, shots: int, holdout: int, most_shots: int
) -> tuple[list[int], list[int]]:
    """(source indices: up to `shots`, spread over the pool; held-out indices: the last ones).

    The held-out frames are the same for every T of a video (up to `holdout`, leaving
    `most_shots` frames to embed from), so that the rows of the table compare like with like.
    A video too short for both keeps at least half its frames held out and embeds from fewer
    than T; the report says how many were used.
    """
    count = len(video.frames)
    held = max(1, min(holdout, max(count // 2, count - most_shots)))
    pool = count - held
    sources = np.unique(np.linspace(0, pool - 1, min(shots, pool)).round().astype(int)).tolist()
    return sources, list(range(pool, count))


def person_from_frames(meta: MetaModel, video: VideoFrames, indices: list[int]) -> PersonModel:
    """A feed-forward person model from some of a video's frames (as embedder_inference does)."""
    candidates = [
        Candidate(video.frames[i], video.landmarks[i], f"{video.key}#{i}") for i in indices
    ]
    return assemble_person(meta, candidates)


def metric_tools(config: Config) -> tuple[dict, dict[str, str]]:
    """The per-frame metric networks (LPIPS, dlib and ArcFace CSIM, dlib landmarks for AKD),
    and {metric: reason} for those whose weights are missing (reported as n/a)."""
    lpips = Lpips.load(config.eval.lpips_alexnet_weights)
    arcface = ArcFaceIdentity.load(config.eval.arcface_weights, config.device)
    unavailable = {
        name: tool.reason
        for name, tool in (("lpips", lpips), ("csim_arcface", arcface))
        if isinstance(tool, Unavailable)
    }
    tools = {
        "lpips": None if isinstance(lpips, Unavailable) else lpips,
        "identities": [DlibIdentity(), *([] if isinstance(arcface, Unavailable) else [arcface])],
        "detector": make_detector("dlib"),
    }
    return tools, unavailable


def frame_metrics(
    real: np.ndarray, fake: np.ndarray, landmarks: np.ndarray, tools: dict
) -> dict[str, list[float]]:
    """Per-frame SSIM, PSNR, LPIPS, CSIM (each identity network) and AKD of uint8 frames."""
    real_t = torch.from_numpy(real).permute(0, 3, 1, 2).float() / 255
    fake_t = torch.from_numpy(fake).permute(0, 3, 1, 2).float() / 255
    values = {"ssim": ssim(fake_t, real_t).tolist(), "psnr": psnr(fake_t, real_t).tolist()}
    if tools.get("lpips") is not None:
        values["lpips"] = tools["lpips"](fake_t, real_t).tolist()
    for identity in tools["identities"]:
        values[f"csim_{identity.name}"] = [
            csim(identity, r, f, p) for r, f, p in zip(real, fake, landmarks, strict=True)
        ]
    akds = []
    detector = tools["detector"]
    for real_points, frame in zip(landmarks, fake, strict=True):
        scale = max(1.0, 256 / frame.shape[0])  # dlib finds faces of 80 px and up
        found = detector.detect(
            cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        )
        if found is not None:
            akds.append(akd(real_points, found / scale))
    values["akd"] = akds
    values["akd_missed"] = [float(len(fake) - len(akds))]
    return values


def evaluate_video(
    meta: MetaModel, video: VideoFrames, config: Config, precision: Precision, tools: dict
) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics per (mode, T) and the generated held-out frames (for FID and the grid)."""
    results, generated = {}, {}
    for shots in config.eval.shots:
        sources, held = split_frames(
            video, shots, config.eval.holdout_frames, max(config.eval.shots)
        )
        real = np.stack([video.frames[i] for i in held])
        person = person_from_frames(meta, video, sources)
        models = {"feed-forward": person}
        if config.eval.finetune:
            models["fine-tuned"] = tuned_in_memory(meta, person, config, precision)
        if config.eval.distill:  # the student of the best person model here
            teacher = models.get("fine-tuned", person)
            models["distilled"] = distilled_in_memory(teacher, config, precision)
        for mode, model in models.items():
            fake = generate_frames(model, video.landmarks[held], precision.device)
            results[f"{mode}/T={shots}"] = {
                "shots_used": len(sources),
                **frame_metrics(real, fake, video.landmarks[held], tools),
            }
            generated[f"{mode}/T={shots}"] = fake
        generated[f"real/T={shots}"] = real
    return results, generated


@torch.no_grad()
def generate_frames(
    model: PersonModel, landmarks: np.ndarray, device: torch.device, batch: int = 8
) -> np.ndarray:
    """The person model's frames (N, S, S, 3) uint8 for landmarks (N, 68, 2) in crop
    coordinates, drawn as landmark pictures; batch pictures at a time."""
    activation, size = model.config.model.output_activation, model.config.model.image_size
    frames = []
    for start in range(0, len(landmarks), batch):
        pictures = np.stack([draw_landmarks(p, size) for p in landmarks[start : start + batch]])
        tensor = image_to_tensor(pictures, activation).to(device)
        frames.append(tensor_to_image(model.generate(tensor), activation))
    return np.concatenate(frames)


def evaluate_person(
    person: PersonModel, video: VideoFrames, device: torch.device, tools: dict
) -> tuple[dict, dict[str, np.ndarray]]:
    """A person model on every frame of a clip of that person it was not made from,
    generated from the frames' own landmarks (self-reenactment): the metrics and frames of
    evaluate_video, in one cell named by the model's kind and T (its frames)."""
    shots = len(person.frames)
    fake = generate_frames(person, video.landmarks, device)
    real = np.stack(video.frames)
    cell = f"{person.kind}/T={shots}"
    results = {cell: {"shots_used": shots, **frame_metrics(real, fake, video.landmarks, tools)}}
    return results, {cell: fake, f"real/T={shots}": real}


def safe_name(key: str) -> str:
    """A file name for a video's results, unique per key: the key's readable letters and a hash
    of the whole key ("Zoë" and "Zoé" would both read "Zo_")."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', key)}-{digest}"


class ReportFolderError(RuntimeError):
    """An --out that holds another evaluation (other model, data or settings)."""


MADE_FROM = "made_from.json"


def made_from(meta: MetaModel, data: Path, config: Config) -> dict[str, str]:
    """What an evaluation's numbers depend on: the model, the data and the protocol's settings."""
    names = ("eval", "finetune", "distill", "person", "seed")
    settings = {name: to_dict(config)[name] for name in names}
    text = json.dumps(settings, sort_keys=True)
    return {
        "meta-model": meta.identity,
        "data": str(data.resolve()),
        "settings": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def claim_report_folder(out: Path, origin: dict[str, str]) -> None:
    """Record what out's results are made from, or refuse a folder made from something else.

    Finished videos are reused only by the evaluation that made them: the same meta-model,
    data and settings. Raises ReportFolderError naming what differs.
    """
    record = out / MADE_FROM
    if record.is_file():
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))
        except (ValueError, OSError) as error:
            raise ReportFolderError(
                f"{record} is damaged ({error}): choose another --out or delete it"
            ) from error
        recorded = recorded if isinstance(recorded, dict) else {}
        changed = [key for key in origin if recorded.get(key) != origin[key]]
        if changed:
            names = "; ".join(f"{k}: {recorded.get(k)} -> {origin[k]}" for k in changed)
            raise ReportFolderError(
                f"{out} holds an evaluation of something else ({names}): choose another --out "
                "or delete it"
            )
        return
    if (out / "videos").is_dir() and any((out / "videos").iterdir()):
        raise ReportFolderError(
            f"{out} holds results that do not say what they were made from: choose another "
            "--out or delete it"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(record, json.dumps(origin, indent=1).encode())


def run_protocol(
    meta: MetaModel,
    videos: list[VideoFrames],
    config: Config,
    out: Path,
    precision: Precision,
    tools: dict,
    progress: bool = True,
) -> dict[str, dict]:
    """Evaluate every video not done yet (out/videos/*.json), then return all per-video results."""
    folder = out / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    everything = {}
    for video in tqdm(videos, unit="video", disable=not progress, desc="evaluating"):
        name = safe_name(video.key)
        done = folder / f"{name}.json"
        if not _finished(done, folder / f"{name}.npz"):
            save_video(out, video.key, *evaluate_video(meta, video, config, precision, tools))
        everything[video.key] = json.loads(done.read_text(encoding="utf-8"))
    return everything


def save_video(out: Path, key: str, results: dict, generated: dict[str, np.ndarray]) -> None:
    """One video's results (out/videos/NAME.json) and frames (NAME.npz), each atomically."""
    folder = out / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    name = safe_name(key)
    save = {cell.replace("/", "__"): value for cell, value in generated.items()}
    atomic_write(folder / f"{name}.npz", lambda temp: np.savez_compressed(temp, **save))
    atomic_write_bytes(folder / f"{name}.json", json.dumps(results).encode())


def _finished(done: Path, frames: Path) -> bool:
    """Whether a video's results and frames are there and whole (a damaged pair is redone)."""
    try:
        json.loads(done.read_text(encoding="utf-8"))
        with np.load(frames, allow_pickle=False) as data:
            data.files  # noqa: B018  (reads the archive's directory)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return True


def generated_frames(out: Path, key: str) -> dict[str, np.ndarray]:
    with np.load(out / "videos" / f"{safe_name(key)}.npz") as data:
        return {name.replace("__", "/"): data[name] for name in data.files}


def grid(out: Path, keys: list[str], shots: int, path: Path) -> Path:
    """Rows: videos; columns: real, feed-forward, fine-tuned (first held-out frame, T=shots)."""
    rows = []
    for key in keys[:6]:
        frames = generated_frames(out, key)
        row = [frames[f"real/T={shots}"][0]]
        row += [frames[f"{mode}/T={shots}"][0] for mode in MODES if f"{mode}/T={shots}" in frames]
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    save_image(np.concatenate(rows, axis=0), path)
    return path
