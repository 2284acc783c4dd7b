"""Meta-train embedder, generator and discriminator on a preprocessed store (SPEC section 3).

    python train.py --config params/default.yaml --data STORE --out runs/NAME [--resume]
        [--set section.key=value ...]

Several GPUs on one machine:  torchrun --nproc_per_node=8 train.py ...
Several machines:             torchrun --nnodes=N --node_rank=I --master_addr=HOST \\
                                  --master_port=29500 --nproc_per_node=8 train.py ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset.store import StoreError
from params.config import ConfigError, add_config_arguments, config_from_args
from training.checkpoint import CheckpointError
from training.loop import RunFolderError, train
from training.monitor import TrainingCollapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.add_argument("--data", type=Path, help="preprocessed store (default: data.store)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out's newest checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        if args.data is not None:
            config.data.store = str(args.data)
        meta = train(config, args.out, args.resume, progress_bar=not args.no_progress)
    except (ConfigError, StoreError, CheckpointError, RunFolderError, TrainingCollapsed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"done: {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
