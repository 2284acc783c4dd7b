"""Parameter counts and forward FLOPs of embedder, generator and discriminator.

Usage: ``python -m bench.model_stats --config params/default.yaml [--set ...]``
FLOPs are counted by torch.utils.flop_counter for one image (one frame for E), so a
multiply-add counts as 2 FLOPs; element-wise operations are not counted.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from network import Discriminator, Embedder, Generator
from params.config import add_config_arguments, config_from_args

# Videos in VoxCeleb2 dev: the width of W when meta-training on all of it.
VOXCELEB2_DEV_VIDEOS = 145_569


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_flops(run) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def model_stats(config, num_videos: int) -> dict[str, dict[str, float]]:
    model = config.model
    size = model.image_size
    embedder, generator = Embedder(model).eval(), Generator(model).eval()
    discriminator = Discriminator(model).eval()
    frame = torch.rand(1, 1, 3, size, size)
    embedding = torch.rand(1, model.embedding_dim)
    w_size = num_videos * model.embedding_dim
    return {
        "embedder": {
            "params": parameter_count(embedder),
            "gflops": forward_flops(lambda: embedder(frame, frame)) / 1e9,
        },
        "generator": {
            "params": parameter_count(generator),
            "gflops": forward_flops(lambda: generator(frame[:, 0], embedding)) / 1e9,
            "adain_params_rows_of_P": generator.adain_param_count,
            "P_params": generator.projection.weight.numel(),
        },
        "discriminator": {
            "params": parameter_count(discriminator),
            "gflops": forward_flops(lambda: discriminator(frame[:, 0], frame[:, 0], embedding))
            / 1e9,
            "W_params": w_size,
            "W_videos": num_videos,
        },
    }


def format_table(stats: dict[str, dict[str, float]], image_size: int) -> str:
    lines = [f"Model at {image_size} px (one image; FLOPs = 2 x multiply-adds)", ""]
    lines.append(f"{'network':<14}{'parameters':>16}{'GFLOPs':>10}")
    for name, row in stats.items():
        lines.append(f"{name:<14}{row['params']:>16,}{row['gflops']:>10.2f}")
    gen, disc = stats["generator"], stats["discriminator"]
    lines += [
        "",
        f"generator: {gen['adain_params_rows_of_P']:,} AdaIN values = rows of P "
        f"({gen['P_params']:,} parameters in P, included above)",
        f"discriminator: W adds {disc['W_params']:,} parameters for {disc['W_videos']:,} "
        "videos (not included above)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.add_argument("--num-videos", type=int, default=VOXCELEB2_DEV_VIDEOS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    stats = model_stats(config, args.num_videos)
    table = format_table(stats, config.model.image_size)
    print(json.dumps(stats, indent=2) if args.json else table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
