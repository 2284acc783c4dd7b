"""The whole workflow in a few CPU minutes, on videos made from the two bundled face photos.

    python -m examples.demo [--out out/demo] [--overwrite] [--set train.steps=600 ...]

1. sample videos (dataset/synthetic.py: the photos moved by known warps),
2. preprocess them into a store,            python -m dataset.preprocess ...
3. meta-train a small model on the CPU,     python train.py ...
4. embed a person from a photo and a clip,  python embedder_inference.py ...
5. fine-tune the person,                    python fine_tuning_training.py ...
6. drive it with another video to an mp4,   python webcam_inference.py ... --side-by-side
7. distil it into a fast student, drive it, python -m person.distill ...
8. evaluate by the paper's protocol,        python evaluate.py ...

Each step runs the same command a user types (printed as it runs). A few CPU minutes and two
people do not give the paper's quality: the point is that every stage works and shows what it
does. For real training see the README ("3. Meta-train").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from dataset.preprocess import main as preprocess_main
from dataset.synthetic import (
    face_pictures,
    moving_clip,
    still_frame,
    synthetic_voxceleb,
    write_video,
)
from dataset.video import iter_frames, video_fps
from embedder_inference import main as embed_main
from evaluate import main as evaluate_main
from fine_tuning_training import main as finetune_main
from params.config import (
    PARAMS_DIR,
    ConfigError,
    add_override_argument,
    load_config,
    save_config,
)
from person.distill import main as distill_main
from train import main as train_main
from utils.folders import is_os_file
from utils.images import save_animation, save_image
from webcam_inference import main as drive_main

CONFIG = PARAMS_DIR / "demo.yaml"


def run(name: str, main, arguments: list[str]) -> None:
    """Run one command as a user would, and stop the demo if it fails."""
    print(f"\n$ python {name} {' '.join(arguments)}", flush=True)
    status = main(arguments)
    if status:
        raise SystemExit(f"demo: {name} failed with status {status}")


def sample_videos(folder: Path) -> dict[str, Path]:
    """Training tree, held-out videos, the person's photo and clip, a driving video."""
    synthetic_voxceleb(folder / "train", videos=6, clips=2, frames=40)
    pictures = face_pictures()
    stills = {name: still_frame(picture, 224) for name, picture in pictures.items()}
    for name, (still, points) in stills.items():  # other stretches of motion, never trained on
        write_video(folder / "held_out" / f"{name}.mp4", moving_clip(still, points, 100, 40)[0])
    still, points = stills["astronaut"]
    write_video(folder / "person" / "astronaut_clip.mp4", moving_clip(still, points, 200, 24)[0])
    save_image(pictures["astronaut"], folder / "person" / "astronaut.jpg")
    still, points = stills["grace_hopper"]
    write_video(folder / "driver.mp4", moving_clip(still, points, 300, 72)[0])
    return {
        "train": folder / "train",
        "held_out": folder / "held_out",
        "person": folder / "person",
        "driver": folder / "driver.mp4",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo's --out")
    add_override_argument(
        parser, "override a demo.yaml value in every step, e.g. --set train.steps=100 (repeatable)"
    )
    args = parser.parse_args(argv)
    try:
        demo_config = load_config(CONFIG, args.overrides)
    except ConfigError as error:
        parser.error(str(error))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out} is a file, not a folder")
    if args.out.exists() and any(not is_os_file(p) for p in args.out.iterdir()):
        if not args.overwrite:
            parser.error(f"{args.out} exists; pass --overwrite to replace it")
        if not (args.out / "config.yaml").is_file() or not (args.out / "videos").is_dir():
            parser.error(f"{args.out} is not a demo's folder; --overwrite replaces only those")
        shutil.rmtree(args.out)
    start = time.perf_counter()
    out = args.out
    settings = out / "config.yaml"  # demo.yaml with the --set values: one file for every command
    save_config(demo_config, settings)
    config = ["--config", str(settings)]
    data = sample_videos(out / "videos")
    run(
        "-m dataset.preprocess",
        preprocess_main,
        ["--src", str(data["train"]), "--dst", str(out / "store"), *config],
    )
    run(
        "train.py",
        train_main,
        [*config, "--data", str(out / "store"), "--out", str(out / "run")],
    )
    meta = out / "run" / "meta.pt"
    run(
        "embedder_inference.py",
        embed_main,
        ["--model", str(meta), "--out", str(out / "astronaut.pt"), str(data["person"]), *config],
    )
    run(
        "fine_tuning_training.py",
        finetune_main,
        [
            "--model",
            str(meta),
            "--person",
            str(out / "astronaut.pt"),
            "--out",
            str(out / "astronaut_tuned.pt"),
            *config,
        ],
    )
    driven = out / "driven.mp4"
    run(
        "webcam_inference.py",
        drive_main,
        [
            "--model",
            str(out / "astronaut_tuned.pt"),
            "--source",
            str(data["driver"]),
            "--output",
            str(driven),
            "--no-window",
            "--side-by-side",
        ],
    )
    animation = driven.with_suffix(".gif")  # for chats and READMEs, where mp4 does not play
    save_animation(list(iter_frames(driven)), animation, video_fps(driven))
    fast, driven_fast = out / "astronaut_fast.pt", out / "driven_fast.mp4"
    run(  # the student sees the training people's motion retargeted onto the astronaut
        "-m person.distill",
        distill_main,
        [
            str(out / "astronaut_tuned.pt"),
            "--out",
            str(fast),
            "--drivers",
            str(out / "store"),
            *config,
        ],
    )
    run(
        "webcam_inference.py",
        drive_main,
        [
            *("--model", str(fast), "--source", str(data["driver"])),
            *("--output", str(driven_fast), "--no-window", "--side-by-side"),
        ],
    )
    run(
        "evaluate.py",
        evaluate_main,
        [
            "--model",
            str(meta),
            "--data",
            str(data["held_out"]),
            "--out",
            str(out / "evaluation"),
            *config,
        ],
    )
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\nDemo done in {minutes:.1f} min. Look at:\n"
        f"  {driven} and {animation}  (driver | landmarks | avatar)\n"
        f"  {out / 'run' / 'samples'}/  (training: sources, target landmarks, generated, real)\n"
        f"  {out / 'run' / 'loss.png'}  (loss curves)   tensorboard --logdir {out / 'run'}\n"
        f"  {out / 'astronaut_tuned_samples.png'}  (the fine-tuned person)\n"
        f"  {driven_fast} and {out / 'astronaut_fast_samples.png'}  (the fast student: "
        "landmarks | teacher | student)\n"
        f"  {out / 'evaluation' / 'table.md'} and grid.png  (the paper's protocol)\n"
        "A few CPU minutes on two people do not give the paper's quality; that takes VoxCeleb2,\n"
        "the VGG19 and VGGFace weights and days on GPUs: see the README, '3. Meta-train'."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
