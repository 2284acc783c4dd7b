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

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from loss.vggface import PerceptualWeightsError
from models.meta_model import MetaModelError, load_meta_model
from models.person_model import PersonModelError, load_person_model
from params.config import ConfigError
from person.finetune import FineTuneError, fine_tune
from runtime.cli import add_run_arguments, refuse_to_overwrite, run_settings, user_error
from utils.signals import report_stop, stop_requests_as_ctrl_c

RESUME = "the same command with --resume"  # after a stop, or a full disk: no step is lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="meta-model (RUN/meta.pt)")
    parser.add_argument("--person", type=Path, required=True, help="person model to start from")
    parser.add_argument("--out", type=Path, required=True, help="fine-tuned person model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--resume", action="store_true", help="continue a stopped fine-tuning")
    parser.add_argument("--no-progress", action="store_true")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, args.out, args.overwrite, [args.model, args.person])
    try:
        meta = load_meta_model(args.model)
        person = load_person_model(args.person)
        if person.meta_identity != meta.identity:
            raise PersonModelError(
                f"{args.person} was embedded with meta-model {person.meta_identity}, not with "
                f"{args.model} ({meta.identity}): embed the person again with this model"
            )
        run = run_settings(meta.config, args)
        with stop_requests_as_ctrl_c():
            tuned = fine_tune(
                meta, person, run.config, args.out, run.precision, args.resume, not args.no_progress
            )
    except (
        MetaModelError,
        PersonModelError,
        ConfigError,
        FineTuneError,
        PerceptualWeightsError,
        OSError,
    ) as error:
        return user_error(error, f"run {RESUME}")
    except KeyboardInterrupt:
        return report_stop(f"continue from the last saved step: {RESUME}")
    print(f"wrote {args.out} ({tuned.kind}, {len(tuned.frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
