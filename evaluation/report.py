"""The evaluation's report: results.json, a Markdown table laid out like the paper's Table 1
(the paper's numbers beside ours), and a picture grid of real and generated frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from evaluation.protocol import MODES, generated_frames
from metrics import Unavailable
from params.config import Config, to_dict
from utils.files import atomic_write_bytes

# Zakharov et al. 2019, Table 1, VoxCeleb2: FID, SSIM, CSIM for T = 1, 8, 32.
PAPER = {
    "feed-forward": {1: (46.1, 0.61, 0.42), 8: (42.2, 0.64, 0.47), 32: (40.4, 0.65, 0.48)},
    "fine-tuned": {1: (48.5, 0.64, 0.35), 8: (42.2, 0.68, 0.42), 32: (30.6, 0.72, 0.45)},
}
COLUMNS = ("fid", "ssim", "csim_arcface", "csim_dlib", "psnr", "lpips", "akd")


def aggregate(
    per_video: dict[str, dict], out: Path, config: Config, fid_loader, unavailable: dict[str, str]
) -> dict[str, dict[str, object]]:
    """Mean of every per-frame metric over all held-out frames, and FID, per (mode, T)."""
    table: dict[str, dict[str, object]] = {}
    keys = sorted({cell for video in per_video.values() for cell in video})
    for cell in keys:
        values: dict[str, list[float]] = {}
        for video in per_video.values():
            for metric, numbers in video.get(cell, {}).items():
                if isinstance(numbers, list):
                    values.setdefault(metric, []).extend(numbers)
        row: dict[str, object] = {
            metric: float(np.mean(v)) if v else None
            for metric, v in values.items()
            if metric != "akd_missed"
        }
        row["akd_missed_frames"] = int(sum(values.get("akd_missed", [])))
        row["fewest_shots_used"] = min(
            video[cell]["shots_used"] for video in per_video.values() if cell in video
        )
        row["frames"] = len(values.get("ssim", []))
        row["videos"] = sum(cell in video for video in per_video.values())
        fid = fid_loader()
        if isinstance(fid, Unavailable):
            row["fid"] = fid
        else:
            shots = cell.split("T=")[1]
            for key in per_video:
                frames = generated_frames(out, key)
                real = torch.from_numpy(frames[f"real/T={shots}"]).permute(0, 3, 1, 2) / 255
                fake = torch.from_numpy(frames[cell]).permute(0, 3, 1, 2) / 255
                fid.add(real, fake)
            row["fid"] = fid.compute()
        for metric, reason in unavailable.items():
            row.setdefault(metric, Unavailable(reason))
        table[cell] = row
    return table


def _shown(value: object, digits: int = 3) -> str:
    if isinstance(value, Unavailable):
        return "n/a"
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _tuning(config: Config) -> str:
    """What the table's fine-tuned and distilled rows were made with."""
    parts = []
    if config.eval.finetune:
        tune = config.finetune
        steps = f", steps {tune.steps}" if tune.steps else ""
        parts.append(f"fine-tuned on them: {tune.epochs} epochs, batch {tune.batch_size}{steps}")
    if config.eval.distill:
        teacher = "fine-tuned" if config.eval.finetune else "feed-forward"
        parts.append(
            f"distilled: a student of the {teacher} model, {config.distill.steps} steps on "
            f"{config.distill.poses} poses of them"
        )
    return f" ({'; '.join(parts)})" if parts else ""


def markdown(
    table: dict[str, dict[str, object]],
    config: Config,
    data: str,
    videos: int,
    what: str | None = None,
) -> str:
    """The Table 1 layout of aggregate's table; what: the sentence saying what was evaluated
    (default: the meta-model protocol's videos, held-out frames and T)."""
    what = what or (
        f"Data: {data} ({videos} videos); up to {config.eval.holdout_frames} held-out frames per "
        f"video (the same for every T), generated from their own landmarks; "
        f"T = {config.eval.shots} frames to embed{_tuning(config)}; "
    )
    lines = [
        "# Self-reenactment on held-out people (the paper's Table 1 protocol)",
        "",
        f"{what}{config.model.image_size} px. Paper: VoxCeleb2 test set, 256 px, ArcFace CSIM.",
        "",
        "| method | T | FID (paper) | SSIM (paper) | CSIM ArcFace (paper) | CSIM dlib | PSNR "
        "| LPIPS | AKD (/ inter-ocular) | no face found |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for shots in config.eval.shots:
            row = table.get(f"{mode}/T={shots}")
            if row is None:
                continue
            paper = PAPER.get(mode, {}).get(shots)
            used = row["fewest_shots_used"]
            shown_shots = str(shots) if used == shots else f"{shots} (some videos: {used})"
            fid_p, ssim_p, csim_p = ("-", "-", "-") if paper is None else paper
            lines.append(
                f"| {mode} | {shown_shots} | {_shown(row.get('fid'), 1)} ({fid_p}) | "
                f"{_shown(row.get('ssim'))} ({ssim_p}) | {_shown(row.get('csim_arcface'))} "
                f"({csim_p}) | {_shown(row.get('csim_dlib'))} | {_shown(row.get('psnr'), 2)} | "
                f"{_shown(row.get('lpips'))} | {_shown(row.get('akd'))} | "
                f"{row['akd_missed_frames']} of {row['frames']} |"
            )
    reasons = {
        metric: value.reason
        for row in table.values()
        for metric, value in row.items()
        if isinstance(value, Unavailable)
    }
    if any(row["fewest_shots_used"] < int(cell.split("T=")[1]) for cell, row in table.items()):
        lines += [
            "",
            "T (some videos: n): videos too short for T frames to embed and the held-out frames "
            "gave only n; preprocess with more frames (data.frames_per_video) or lower "
            "eval.holdout_frames.",
        ]
    if reasons:
        lines += [
            "",
            "Not computed (n/a):",
            *(f"- {metric}: {reason}" for metric, reason in sorted(reasons.items())),
        ]
    lines += [
        "",
        "SSIM, PSNR, LPIPS: torchmetrics; FID: torchmetrics with torch-fidelity's Inception; CSIM: "
        "cosine similarity of face embeddings (dlib ResNet offline; ArcFace when given; dlib's "
        "cosines run high for any two faces and do not compare with ArcFace's); AKD: mean "
        "landmark distance (dlib on the generated frame) / inter-ocular distance, over the "
        "generated frames where dlib finds a face ('no face found' counts the others; '-': none "
        "found).",
    ]
    return "\n".join(lines) + "\n"


def write_report(
    table: dict[str, dict[str, object]], config: Config, out: Path, data: str, videos: int
) -> tuple[Path, Path]:
    def plain(value: object) -> object:
        return {"unavailable": value.reason} if isinstance(value, Unavailable) else value

    payload = {
        "data": data,
        "videos": videos,
        "settings": {
            "eval": to_dict(config)["eval"],
            "finetune": to_dict(config)["finetune"],
            "distill": to_dict(config)["distill"],
            "image_size": config.model.image_size,
        },
        "results": {cell: {k: plain(v) for k, v in row.items()} for cell, row in table.items()},
        "paper": {
            mode: {
                str(t): dict(zip(("fid", "ssim", "csim"), v, strict=True)) for t, v in rows.items()
            }
            for mode, rows in PAPER.items()
        },
    }
    json_path, md_path = out / "results.json", out / "table.md"
    atomic_write_bytes(json_path, json.dumps(payload, indent=1).encode())
    atomic_write_bytes(md_path, markdown(table, config, data, videos).encode())
    return json_path, md_path
