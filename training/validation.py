"""Feed-forward quality on held-out identities, so that overfitting shows while training runs.

A fixed set of validation episodes (people never trained on: the store's validation split,
chosen by identity) goes through E and G as a new person would: e_hat from K frames, the
held-out target generated from its landmarks. L1 and SSIM against the real target, in [0, 1]
units. The episodes are the same at every validation (fixed seeds), so the numbers compare.
"""

from __future__ import annotations

import torch

from dataset.value_range import to_unit_range
from dataset.voxceleb import VoxCelebDataset
from metrics.image import ssim
from training.meta import MetaLearner


def validation_episodes(dataset: VoxCelebDataset, count: int) -> list[dict[str, torch.Tensor]]:
    """count episodes, cycling over the split's videos, each with a fixed seed."""
    return [dataset[(index % len(dataset), index)] for index in range(count)]


@torch.no_grad()
def validate(
    learner: MetaLearner, episodes: list[dict[str, torch.Tensor]], batch_size: int
) -> dict[str, float]:
    """{'val/l1', 'val/ssim'} of generated vs real held-out targets, means over episodes."""
    activation = learner.config.model.output_activation
    learner.train(False)
    l1_sum, ssim_sum = 0.0, 0.0
    try:
        for start in range(0, len(episodes), batch_size):
            chunk = episodes[start : start + batch_size]
            batch = learner.to_device(
                {key: torch.stack([e[key] for e in chunk]) for key in chunk[0]}
            )
            with learner.precision.autocast():
                e_hat = learner.embedder(batch["frames"], batch["landmark_images"])
                fake = learner.generator(batch["target_landmark_image"], e_hat)
            fake01 = to_unit_range(fake.float(), activation)
            real01 = to_unit_range(batch["target_frame"].float(), activation)
            l1_sum += float((fake01 - real01).abs().mean(dim=(1, 2, 3)).sum())
            ssim_sum += float(ssim(fake01.contiguous(), real01.contiguous()).sum())
    finally:
        learner.train(True)
    return {"val/l1": l1_sum / len(episodes), "val/ssim": ssim_sum / len(episodes)}
