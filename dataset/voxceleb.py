"""The K-shot meta-learning dataset: one episode per video of the store.

An item is K frames of one video with their landmark pictures (for the embedder), one more
frame of the same video, never one of the K, with its landmark picture (the generator's target),
and the video's row in the discriminator's W table. Images are float32 (C, H, W) tensors in the
generator's output range (dataset.value_range). Landmark pictures are drawn here, after the
optional flip, so a flip mirrors the frames and swaps left and right landmarks consistently.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dataset.face import draw_landmarks, flip_landmarks
from dataset.store import (
    SPLITS,
    StoreError,
    check_crop_matches,
    read_manifest,
    read_record,
    read_settings,
    split_of,
)
from dataset.value_range import image_to_tensor, value_range
from params.config import Config
from utils.images import decode_jpeg

log = logging.getLogger(__name__)


class VoxCelebDataset(Dataset):
    """Episodes from a preprocessed store (python -m dataset.preprocess).

    Item keys: 'frames' (K, 3, S, S), 'landmark_images' (K, 3, S, S), 'target_frame' (3, S, S),
    'target_landmark_image' (3, S, S), 'video_index' (int64: position in ``keys``),
    'frame_indices' (K + 1 int64 record frame numbers, the target last), 'replaced' (1 when a
    damaged record was replaced by another video). ``keys[video_index]`` names the video: W's
    rows are looked up by that key, never by position.

    An item is asked for by index (randomness from torch's global generator, which DataLoader
    seeds per worker) or by (index, seed): then the frame choice and flip are a function of the
    seed alone, so a training run can be resumed bit for bit whatever the workers.
    A record that cannot be read is logged once with its path and replaced by the next video,
    so one damaged file never ends a long run.
    """

    def __init__(
        self,
        store: str | Path,
        k_shot: int,
        output_activation: str,
        split: str = "train",
        validation_fraction: float = 0.0,
        flip_probability: float = 0.0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
        if k_shot < 1:
            raise ValueError(f"k_shot must be >= 1, got {k_shot}")
        value_range(output_activation)  # fails early on an unknown activation
        self.store = Path(store)
        self.settings = read_settings(self.store)
        self.k_shot = k_shot
        self.output_activation = output_activation
        self.flip_probability = flip_probability
        entries = [
            entry
            for entry in read_manifest(self.store)
            if split == "all" or split_of(entry.identity, validation_fraction) == split
        ]
        # An episode needs K + 1 distinct frames; shorter records (a store built for a smaller K)
        # are left out.
        self._entries = [entry for entry in entries if entry.num_frames > k_shot]
        self.skipped_short = len(entries) - len(self._entries)
        if not self._entries:
            raise StoreError(
                f"no {split} video with at least {k_shot + 1} frames in {self.store} "
                f"({len(entries)} in the split, validation_fraction={validation_fraction})"
            )
        self.keys = [entry.key for entry in self._entries]
        self._damaged: set[Path] = set()  # paths already reported (per process)

    @classmethod
    def from_config(cls, config: Config, split: str = "train") -> VoxCelebDataset:
        """The dataset that config describes; the store must be cropped as config crops."""
        data = config.data
        dataset = cls(
            data.store,
            data.k_shot,
            config.model.output_activation,
            split,
            data.validation_fraction,
            data.flip_probability if split == "train" else 0.0,
        )
        check_crop_matches(dataset.store, dataset.settings, config)
        return dataset

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        for attempt in range(len(self._entries)):
            position = (index + attempt) % len(self._entries)
            try:
                item = self._episode(position, generator)
            except (StoreError, OSError, ValueError, zipfile.BadZipFile, cv2.error) as error:
                self._report_damaged(position, error)
                continue
            item["replaced"] = torch.tensor(int(attempt > 0))
            return item
        raise StoreError(f"no readable record in {self.store}")

    def _report_damaged(self, position: int, error: Exception) -> None:
        path = self.store / self._entries[position].path
        if path not in self._damaged:
            self._damaged.add(path)
            said = str(error) if str(path) in str(error) else f"damaged record {path} ({error})"
            log.warning("%s; using other videos instead", said)

    def _episode(self, index: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        entry = self._entries[index]
        record = read_record(self.store / entry.path)
        if len(record.jpeg_frames) <= self.k_shot:
            raise StoreError(f"record {entry.path} has fewer frames than its manifest says")
        chosen = torch.randperm(len(record.jpeg_frames), generator=generator)[: self.k_shot + 1]
        flip = bool(
            self.flip_probability > 0
            and torch.rand((), generator=generator) < self.flip_probability
        )
        frames, pictures = [], []
        for frame_index in chosen.tolist():
            try:
                frame = decode_jpeg(record.jpeg_frames[frame_index])
            except ValueError as error:
                message = f"record {entry.path}: frame {frame_index} does not decode"
                raise StoreError(message) from error
            points = record.landmarks[frame_index]
            if flip:
                frame = frame[:, ::-1]
                points = flip_landmarks(points, frame.shape[1])
            frames.append(frame)
            pictures.append(draw_landmarks(points, frame.shape[0]))
        frames_tensor = image_to_tensor(np.stack(frames), self.output_activation)
        pictures_tensor = image_to_tensor(np.stack(pictures), self.output_activation)
        return {
            "frames": frames_tensor[:-1],
            "landmark_images": pictures_tensor[:-1],
            "target_frame": frames_tensor[-1],
            "target_landmark_image": pictures_tensor[-1],
            "video_index": torch.tensor(index, dtype=torch.int64),
            "frame_indices": chosen.to(torch.int64),
        }
