"""Fine-tune a person model on its frames (SPEC section 4): a self-contained person model.

    python fine_tuning_training.py --model META --person PERSON --out PERSON_MODEL
        [--config FILE] [--set finetune.steps=N ...] [--resume]

PERSON comes from embedder_inference.py. The content loss needs the VGG weights
(--set loss.vgg19_weights=... loss.vggface_weights=...). Beside PERSON_MODEL: NAME_samples.png
(landmarks, generated, real for the person's frames) and NAME_loss.png; while it runs,
NAME.work/ keeps a checkpoint (--resume continues from it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avatar.finetune import FineTuneError, fine_tune
from avatar.person import PersonModelError, load_person_model
from loss.vggface import PerceptualWeightsError
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
    parser.add_argument("--person", type=Path, required=True, help="person model to start from")
    parser.add_argument("--out", type=Path, required=True, help="fine-tuned person model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--resume", action="store_true", help="continue a stopped fine-tuning")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--config", help="YAML: its person/finetune/train/eval sections")
    add_override_argument(parser, RUN_SETTINGS_HELP)
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    try:
        meta = load_meta_model(args.model)
        person = load_person_model(args.person)
        if person.meta_identity != meta.identity:
            raise PersonModelError(
                f"{args.person} was embedded with meta-model {person.meta_identity}, not with "
                f"{args.model} ({meta.identity}): embed the person again with this model"
            )
        config = with_run_settings(meta.config, args.config, args.overrides)
        device = resolve_device(config.device)
        precision = Precision(resolve_precision(config.train.precision, device), device)
        tuned = fine_tune(
            meta, person, config, args.out, precision, args.resume, not args.no_progress
        )
    except (
        MetaModelError,
        PersonModelError,
        ConfigError,
        FineTuneError,
        PerceptualWeightsError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({tuned.kind}, {len(tuned.frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
