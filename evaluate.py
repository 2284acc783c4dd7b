"""Evaluate a meta-model by the paper's self-reenactment protocol (Table 1).

    python evaluate.py --model META --data STORE_OR_FOLDER --out DIR [--config FILE]
        [--set eval.shots=[1,8,32] ...]

STORE_OR_FOLDER: a preprocessed store (its validation split: people never trained on) or a
folder of videos. Writes DIR/results.json, DIR/table.md (beside the paper's numbers) and
DIR/grid.png; a stopped evaluation continues where it was. FID, LPIPS and ArcFace CSIM need
their weight files (eval.*); without them they are reported as unavailable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from dataset.clips import PreprocessError
from dataset.store import StoreError
from evaluation import protocol
from evaluation.report import aggregate, write_report
from metrics.fid import Fid
from models.meta_model import MetaModelError, load_meta_model
from params.config import ConfigError
from runtime.cli import add_run_arguments, run_settings, user_error
from utils.signals import report_stop, stop_requests_as_ctrl_c

USER_ERRORS = (MetaModelError, ConfigError, StoreError, PreprocessError)
AGAIN = "run the same command again: finished videos are kept"  # after a stop or a full disk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="meta-model (RUN/meta.pt)")
    parser.add_argument("--data", type=Path, required=True, help="store or folder of videos")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--no-progress", action="store_true")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        meta = load_meta_model(args.model)
        run = run_settings(meta.config, args)
        config, precision = run.config, run.precision
        meta.to(run.device)
        videos = protocol.load_videos(args.data, config)
        if not videos:
            raise StoreError(
                f"no video to evaluate in {args.data} (a store's validation split is used)"
            )
        tools, unavailable = protocol.metric_tools(config)
        protocol.claim_report_folder(args.out, protocol.made_from(meta, args.data, config))
        with stop_requests_as_ctrl_c():
            per_video = protocol.run_protocol(
                meta, videos, config, args.out, precision, tools, not args.no_progress
            )
        table = aggregate(
            per_video,
            args.out,
            config,
            lambda: Fid.load(config.eval.fid_inception_weights),
            unavailable,
        )
        json_path, md_path = write_report(table, config, args.out, str(args.data), len(videos))
        picture = protocol.grid(
            args.out, sorted(per_video), max(config.eval.shots), args.out / "grid.png"
        )
    except (*USER_ERRORS, protocol.ReportFolderError, OSError) as error:
        return user_error(error, AGAIN)
    except KeyboardInterrupt:
        return report_stop(AGAIN)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {json_path}, {md_path}, {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
