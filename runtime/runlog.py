"""Watching a job learn: scalars, sample grids and the loss plot (meta-training, fine-tuning).

Everything goes to the job's folder (rank 0 only under DDP):
- ``metrics.jsonl``: one line per logged step with every scalar (the loss plot and a resumed
  job read it back; it is the history in a form any tool can read);
- ``tensorboard/``: the same scalars and the sample grids (``tensorboard --logdir RUN``);
- ``samples/NAME-N.png``: source frames (up to 4), target landmarks, generated, real;
- ``loss.png``: every loss term over the steps, redrawn with each checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dataset.value_range import tensor_to_image
from utils.files import atomic_write, errors_naming
from utils.images import image_grid, save_image

METRICS_FILE = "metrics.jsonl"
SOURCE_COLUMNS = 4


def sample_grid(
    images: dict[str, torch.Tensor], fake: torch.Tensor, output_activation: str, rows: int = 4
) -> np.ndarray:
    """One row per episode: source frames (up to 4), target landmarks, generated, real."""

    def pictures(tensor: torch.Tensor) -> np.ndarray:
        return tensor_to_image(tensor, output_activation)

    grid_rows = []
    for i in range(min(rows, fake.shape[0])):
        sources = pictures(images["frames"][i, :SOURCE_COLUMNS])
        grid_rows.append(
            [
                *sources,
                pictures(images["target_landmark_image"][i]),
                pictures(fake[i]),
                pictures(images["target_frame"][i]),
            ]
        )
    return image_grid(grid_rows)


class RunLog:
    """Scalars to metrics.jsonl and TensorBoard, pictures to samples/ and TensorBoard."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        path = self.run_dir / METRICS_FILE
        with errors_naming(path), path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **values}) + "\n")

    def picture(self, step: int, name: str, picture: np.ndarray) -> Path:
        path = self.run_dir / "samples" / f"{name}-{step:09d}.png"
        save_image(picture, path)
        self.writer.add_image(name, picture, step, dataformats="HWC")
        return path

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def read_metrics(run_dir: Path, until_step: int | None = None) -> list[dict[str, float]]:
    """The logged history, without lines after until_step (a resumed run rewrites those)."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a killed run
        if until_step is None or record["step"] <= until_step:
            records.append(record)
    return records


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop history logged after the checkpoint a run resumes from: it will be logged again."""
    records = read_metrics(run_dir, step)
    text = "".join(json.dumps(record) + "\n" for record in records)
    atomic_write(run_dir / METRICS_FILE, lambda temp: Path(temp).write_text(text, encoding="utf-8"))


def plot_losses(run_dir: Path) -> Path | None:
    """loss.png: each generator and discriminator term, and validation, over the steps (every
    key any record has: a step may log losses and validation in separate records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    if not records:
        return None
    seen = sorted({key for record in records for key in record if key != "step"})
    panels = [
        ("generator terms", [k for k in seen if k.startswith("loss_g/")]),
        ("discriminator", [k for k in seen if k.startswith(("loss_d/", "score/"))]),
        ("validation (held out)", [k for k in seen if k.startswith("val/") and k != "val/psnr"]),
        ("validation PSNR (dB)", [k for k in seen if k == "val/psnr"]),
    ]
    panels = [(title, keys) for title, keys in panels if keys]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for axis, (title, keys) in zip(axes[:, 0], panels, strict=True):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r]
            axis.plot(*zip(*points, strict=True), label=key.split("/", 1)[1])
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.legend(fontsize=7, ncol=3)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = run_dir / "loss.png"
    atomic_write(path, lambda temp: figure.savefig(temp, dpi=100))
    plt.close(figure)
    return path
