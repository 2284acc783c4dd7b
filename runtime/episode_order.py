"""A resumable order of episodes: epoch after epoch a seeded permutation, one seed per episode.

The stream is a function of the seed and the position alone, so a job that stops keeps only how
many episodes it consumed and resumes exactly, whatever its number of DataLoader workers or DDP
ranks (meta-training, training/data.py) or of steps done (fine-tuning's frame choice).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

_EPOCH_MIX, _ITEM_MIX = 1_000_003, 2_654_435_761


class EpisodeBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of (video index, episode seed) for one rank, from a global position."""

    def __init__(
        self,
        length: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if length < 1 or batch_size < 1:
            raise ValueError("an episode stream needs videos and a positive batch size")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.rank, self.world_size = start, rank, world_size
        self._order: tuple[int, torch.Tensor] | None = None

    def episode(self, position: int) -> tuple[int, int]:
        """(video index, episode seed) at a position of the global stream."""
        epoch, offset = divmod(position, self.length)
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * _EPOCH_MIX + epoch)
            self._order = (epoch, torch.randperm(self.length, generator=generator))
        seed = (self.seed * _ITEM_MIX + position) % (2**63)
        return int(self._order[1][offset]), seed

    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.start + self.rank * self.batch_size
        while True:
            yield [self.episode(position + i) for i in range(self.batch_size)]
            position += self.global_batch_size()

    def __len__(self) -> int:  # endless; DataLoader asks only for progress displays
        raise TypeError("the episode stream is endless")
