"""How close a student is to its teacher: the numbers and pictures of a distillation.

PSNR and SSIM (metrics/image.py, torchmetrics) of the student's frames against the teacher's on
held-out poses, split by where the poses came from (drivers' motion, the person's own frames);
on the person's held-out real frames, SSIM of student and teacher to the real frames (what the
student loses against reality, beside what the teacher already lost).
"""

from __future__ import annotations

import numpy as np
import torch

from dataset.value_range import image_to_tensor, to_unit_range
from metrics.image import psnr, ssim
from utils.images import image_grid

SOURCES = ("driver", "own")


def compare(fake: torch.Tensor, reference: torch.Tensor, activation: str) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of frames (B, 3, S, S) in the output range against references;
    empty when there are no frames."""
    if len(fake) == 0:
        return {}
    fake01, ref01 = to_unit_range(fake, activation), to_unit_range(reference, activation)
    return {"psnr": float(psnr(fake01, ref01).mean()), "ssim": float(ssim(fake01, ref01).mean())}


def measure(
    student: torch.Tensor,
    held,
    sources: list[str],
    real: torch.Tensor | None,
    activation: str,
) -> dict[str, object]:
    """The student's frames for the held-out poses (N, 3, S, S, output range) against the
    teacher's (``held.frames``, uint8), per source; SSIM to the real frames of the person's own
    held-out poses (``real``, in the order of the 'own' poses) for student and teacher."""
    teacher = image_to_tensor(held.frames.permute(0, 2, 3, 1).numpy(), activation)
    report: dict[str, object] = {"held_out_poses": len(sources)}
    for source in SOURCES:
        chosen = torch.tensor([s == source for s in sources], dtype=torch.bool)
        if chosen.any():
            report[f"student_vs_teacher/{source}"] = compare(
                student[chosen], teacher[chosen], activation
            )
    own = torch.tensor([s == "own" for s in sources], dtype=torch.bool)
    if real is not None and own.any():
        report["ssim_to_real/student"] = compare(student[own], real, activation)["ssim"]
        report["ssim_to_real/teacher"] = compare(teacher[own], real, activation)["ssim"]
    return report


def sample_grid(pictures: torch.Tensor, teacher: torch.Tensor, student: np.ndarray) -> np.ndarray:
    """Rows of landmark picture | teacher | student: uint8 (N, 3, S, S), (N, 3, S, S) and
    RGB uint8 (N, S, S, 3)."""
    pictures = pictures.permute(0, 2, 3, 1).numpy()
    teacher = teacher.permute(0, 2, 3, 1).numpy()
    return image_grid([list(row) for row in zip(pictures, teacher, student, strict=True)])


def describe(report: dict[str, object]) -> str:
    """The report in a few lines for the terminal."""
    lines = [f"{report['steps']} steps on {report['training_poses']} teacher frames"]
    for source in SOURCES:
        value = report.get(f"student_vs_teacher/{source}")
        if value:
            lines.append(
                f"held-out {source} poses: PSNR {value['psnr']:.2f} dB, SSIM {value['ssim']:.4f} "
                "(student vs teacher)"
            )
    if "ssim_to_real/student" in report:
        lines.append(
            "SSIM to the person's held-out real frames: student "
            f"{report['ssim_to_real/student']:.4f}, teacher {report['ssim_to_real/teacher']:.4f}"
        )
    return "\n".join(lines)
