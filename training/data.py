"""Episodes for training: a resumable order over videos, shared out between DDP ranks.

The run consumes one global stream of episodes: epoch after epoch, a permutation of the videos
(seeded by the run's seed and the epoch), each episode with its own seed for the choice of
frames and the flip. A global batch is world_size x batch_size consecutive episodes of that
stream; rank r takes its slice. The checkpoint keeps only how many episodes were consumed, so a
run resumes exactly where it stopped, with any number of DataLoader workers and on any number
of ranks (docs/DESIGN.md).
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from dataset.voxceleb import VoxCelebDataset
from params.config import Config
from runtime.episode_order import EpisodeBatchSampler


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
