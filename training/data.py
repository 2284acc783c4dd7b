"""Episodes for training: a resumable order over videos, shared out between DDP ranks.

The run consumes one global stream of episodes: epoch after epoch, a permutation of the videos
(seeded by the run's seed and the epoch), each episode with its own seed for the choice of
frames and the flip. A global batch is world_size x batch_size consecutive episodes of that
stream; rank r takes its slice. The checkpoint keeps only how many episodes were consumed, so a
run resumes exactly where it stopped, with any number of DataLoader workers and on any number
of ranks (docs/DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from dataset.voxceleb import VoxCelebDataset
from params.config import Config

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


def make_loader(
    dataset: VoxCelebDataset,
    config: Config,
    start: int,
    rank: int,
    world_size: int,
    pin_memory: bool,
) -> tuple[DataLoader, EpisodeBatchSampler]:
    """This rank's endless DataLoader, starting at global episode position start."""
    sampler = EpisodeBatchSampler(
        len(dataset), config.data.batch_size, config.seed, start, rank, world_size
    )
    workers = config.data.num_workers
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=config.train.prefetch_factor if workers > 0 else None,
        persistent_workers=workers > 0,
    )
    return loader, sampler
