"""Embed a person from photos and/or videos: a feed-forward person model (SPEC section 4).

    python embedder_inference.py --model META --out PERSON INPUT... [--set person.frames=32]

META is a training run's meta-model export (RUN/meta.pt, or python -m training.export).
INPUT: photo or video files, folders of them, or glob patterns. Faces are cropped exactly as
in training; up to person.frames frames, spread over the inputs and the sharpest preferred,
are embedded. PERSON drives webcam_inference.py directly and is what fine_tuning_training.py
fine-tunes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from models.meta_model import MetaModelError, load_meta_model
from params.config import ConfigError
from person.embed import NoFaceError, embed_person
from runtime.cli import add_run_arguments, refuse_to_overwrite, run_settings, user_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="photos, videos, folders or glob patterns")
    parser.add_argument("--model", type=Path, required=True, help="meta-model (RUN/meta.pt)")
    parser.add_argument("--out", type=Path, required=True, help="person model to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, args.out, args.overwrite, [args.model, *args.inputs])
    start = time.perf_counter()
    try:
        meta = load_meta_model(args.model)
        run = run_settings(meta.config, args)
        person, collected = embed_person(meta.to(run.device), args.inputs, run.config)
        person.save(args.out)
    except (MetaModelError, ConfigError, NoFaceError, OSError) as error:
        return user_error(error)
    for line in collected.notes():
        print(line)
    print(
        f"wrote {args.out}: {len(person.frames)} frame(s) of {len(collected.candidates)} with a "
        f"face embedded in {time.perf_counter() - start:.1f} s (meta-model {meta.identity})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
