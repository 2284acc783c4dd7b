"""Export a training run's meta-model (models/meta_model.py) from its newest checkpoint.

python -m training.export RUN_DIR_OR_CHECKPOINT --out meta.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.meta_model import export_meta_model
from runtime.cli import refuse_to_overwrite, user_error
from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="a run folder (newest checkpoint) or a checkpoint"
    )
    parser.add_argument("--out", type=Path, required=True, help="meta-model file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    source = args.source
    refuse_to_overwrite(parser, args.out, args.overwrite, [source])
    if source.is_dir():
        checkpoints = list_checkpoints(source)
        if not checkpoints:
            parser.error(f"no checkpoint in {source / 'checkpoints'}")
        source = checkpoints[-1]
    try:
        export_meta_model(load_checkpoint(source), args.out)
    except (CheckpointError, OSError) as error:
        return user_error(error)
    print(f"wrote {args.out} (from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
