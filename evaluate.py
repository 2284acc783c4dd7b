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

from dataset.landmarks import make_detector
from dataset.store import StoreError
from evaluation.protocol import grid, load_videos, run_protocol
from evaluation.report import aggregate, write_report
from loss.vggface import PerceptualWeightsError
from metrics import Unavailable
from metrics.fid import Fid
from metrics.identity import ArcFaceIdentity, DlibIdentity
from metrics.image import Lpips
from params.config import (
    RUN_SETTINGS_HELP,
    ConfigError,
    add_override_argument,
    with_run_settings,
)
from training.export import MetaModelError, load_meta_model
from training.precision import Precision, resolve_precision
from utils.device import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="meta-model (RUN/meta.pt)")
    parser.add_argument("--data", type=Path, required=True, help="store or folder of videos")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--config", help="YAML with eval/finetune/train settings")
    add_override_argument(parser, RUN_SETTINGS_HELP)
    args = parser.parse_args(argv)
    try:
        meta = load_meta_model(args.model)
        config = with_run_settings(meta.config, args.config, args.overrides)
        device = resolve_device(config.device)
        meta = load_meta_model(args.model, device)
        precision = Precision(resolve_precision(config.train.precision, device), device)
        videos = load_videos(args.data, config)
        if not videos:
            raise StoreError(
                f"no video to evaluate in {args.data} (a store's validation split is used)"
            )
        lpips = Lpips.load(config.eval.lpips_alexnet_weights)
        arcface = ArcFaceIdentity.load(config.eval.arcface_weights)
        unavailable = {
            name: tool.reason
            for name, tool in (("lpips", lpips), ("csim_arcface", arcface))
            if isinstance(tool, Unavailable)
        }
        tools = {
            "lpips": None if isinstance(lpips, Unavailable) else lpips,
            "identities": [
                DlibIdentity(),
                *([] if isinstance(arcface, Unavailable) else [arcface]),
            ],
            "detector": make_detector("dlib"),
        }
        per_video = run_protocol(
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
        picture = grid(args.out, sorted(per_video), max(config.eval.shots), args.out / "grid.png")
    except (MetaModelError, ConfigError, StoreError, PerceptualWeightsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(md_path.read_text())
    print(f"wrote {json_path}, {md_path}, {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
