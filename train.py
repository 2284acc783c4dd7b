"""Meta-train embedder, generator and discriminator on a preprocessed store (SPEC section 3).

    python train.py --config params/default.yaml --data STORE --out runs/NAME
        [--set section.key=value ...]
    python train.py --out runs/NAME --resume     (continues with the run's own settings)

Several GPUs on one machine:  torchrun --nproc_per_node=8 train.py ...
Several machines:             torchrun --nnodes=N --node_rank=I --master_addr=HOST \\
                                  --master_port=29500 --nproc_per_node=8 train.py ...
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from dataset.store import StoreError
from loss.vggface import PerceptualWeightsError
from params.config import PARAMS_DIR, ConfigError, add_config_arguments, config_from_args
from training.checkpoint import CheckpointError
from training.loop import RunFolderError, how_to_continue, train
from training.monitor import TrainingCollapsed
from utils.device import DeviceError
from utils.files import describe_os_error
from utils.signals import STOPPED, report_stop, stop_requests_as_ctrl_c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(
        parser, None, "with --resume the run's own config.yaml, else params/default.yaml"
    )
    parser.add_argument("--data", type=Path, help="preprocessed store (default: data.store)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out's newest checkpoint"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    args = parser.parse_args(argv)
    if args.config is None:  # a resumed run continues with the settings it was started with
        saved = args.out / "config.yaml"
        if args.resume and not saved.is_file():
            parser.error(f"{saved} not found: is {args.out} a run folder? (or pass --config)")
        args.config = saved if args.resume else PARAMS_DIR / "default.yaml"
    try:
        config = config_from_args(args)
        if args.data is not None:
            config.data.store = str(args.data)
        with stop_requests_as_ctrl_c():
            meta = train(config, args.out, args.resume, progress_bar=not args.no_progress)
    except (
        ConfigError,
        StoreError,
        CheckpointError,
        RunFolderError,
        TrainingCollapsed,
        PerceptualWeightsError,
        DeviceError,
        OSError,
    ) as error:
        print(f"error: {describe_os_error(error, how_to_continue(args.out))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # one process: the loop saved the last finished step
        if os.environ.get("RANK", "0") != "0":
            return STOPPED
        return report_stop(how_to_continue(args.out))
    print(f"done: {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
