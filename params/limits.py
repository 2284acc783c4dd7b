"""The allowed range of every config value, checked once whenever a config is made.

Types are checked as values are read (params/config.py); this pass checks what types cannot:
ranges, choices and the relations between fields, before any work starts. A value out of range
raises ConfigError with the key, the value and what is allowed (a zero checkpoint interval, a
1x1 crop size or a JPEG quality of 1000 never reach the code that would misuse them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = tuple[Callable[[Any], bool], str]  # (is the value allowed, what is allowed)


def at_least(low: float) -> Check:
    return (lambda v: math.isfinite(v) and v >= low, f"finite, >= {low}")


def above(low: float) -> Check:
    return (lambda v: math.isfinite(v) and v > low, f"finite, > {low}")


def between(low: float, high: float) -> Check:
    return (lambda v: low <= v <= high, f"between {low} and {high}")


def inside(low: float, high: float) -> Check:
    return (lambda v: low < v < high, f"strictly between {low} and {high}")


def one_of(*choices: Any) -> Check:
    return (lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def power_of_two(low: int, high: int, zero: bool = False) -> Check:
    def allowed(v: int) -> bool:
        return (zero and v == 0) or (low <= v <= high and v & (v - 1) == 0)

    return (allowed, f"{'0 or ' if zero else ''}a power of two from {low} to {high}")


def each(check: Check, length: int | None = None) -> Check:
    test, text = check

    def allowed(values: list) -> bool:
        return (
            (length is None or len(values) == length)
            and len(values) > 0
            and all(test(v) for v in values)
        )

    count = f"{length} values" if length is not None else "a non-empty list of values"
    return (allowed, f"{count}, each {text}")


def _device(value: str) -> bool:
    name, _, index = value.partition(":")
    return value in ("auto", "cpu", "mps") or (name == "cuda" and (not index or index.isdigit()))


POSITIVE, COUNT = above(0), at_least(1)
LIMITS: dict[str, Check] = {
    "model.image_size": power_of_two(16, 2048),
    "model.base_channels": COUNT,
    "model.max_channels": COUNT,
    "model.embedding_dim": COUNT,
    "model.encoder_final_resolution": power_of_two(1, 64),
    "model.generator_bottleneck_resolution": power_of_two(1, 2048),
    "model.generator_bottleneck_blocks": at_least(0),
    "model.encoder_attention_resolution": power_of_two(1, 2048, zero=True),
    "model.generator_down_attention_resolution": power_of_two(1, 2048, zero=True),
    "model.generator_up_attention_resolution": power_of_two(1, 2048, zero=True),
    "model.upsample_mode": one_of("nearest", "bilinear"),
    "model.output_activation": one_of("tanh", "sigmoid"),
    "loss.vgg19_weight": at_least(0),
    "loss.vggface_weight": at_least(0),
    "loss.feature_matching_weight": at_least(0),
    "loss.match_weight": at_least(0),
    "loss.vgg19_layer_weights": each(at_least(0), 5),
    "loss.vggface_layer_weights": each(at_least(0), 5),
    "loss.vggface_input_order": one_of(None, "bgr", "rgb"),
    "optim.lr_generator": at_least(0),  # 0: that side frozen (ablations, tests)
    "optim.lr_discriminator": at_least(0),
    "optim.betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two values in [0, 1)"),
    "optim.discriminator_steps": COUNT,
    "data.frames_per_video": COUNT,
    "data.k_shot": COUNT,
    "data.detector": one_of("dlib", "fan"),
    "data.batch_size": COUNT,
    "data.num_workers": at_least(0),
    "data.face_width": inside(0, 1),
    "data.eye_line": inside(0, 1),
    "data.crop_padding": one_of("replicate", "black"),
    "data.stabilizer_radius": at_least(0),
    "data.stabilizer_min_cutoff": POSITIVE,
    "data.stabilizer_beta": at_least(0),
    "data.stabilizer_landmark_min_cutoff": POSITIVE,
    "data.stabilizer_landmark_beta": at_least(0),
    "data.redetect_every": COUNT,
    "data.min_face_size": POSITIVE,
    "data.switch_face_ratio": at_least(1),
    "data.fan_min_confidence": between(0, 1),
    "data.cut_threshold": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "data.identity_threshold": POSITIVE,
    "data.jpeg_quality": between(1, 100),
    "data.min_face_frames": at_least(2),
    "data.max_image_pixels": COUNT,
    "data.validation_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.flip_probability": between(0, 1),
    "train.steps": COUNT,
    "train.log_every": COUNT,
    "train.sample_every": COUNT,
    "train.checkpoint_every": COUNT,
    "train.validate_every": COUNT,
    "train.validation_episodes": at_least(0),
    "train.keep_checkpoints": COUNT,
    "train.precision": one_of("auto", "fp32", "bf16", "fp16"),
    "train.prefetch_factor": COUNT,
    "train.collapse_std": at_least(0),
    "train.collapse_checks": COUNT,
    "person.frames": COUNT,
    "person.candidates_per_video": COUNT,
    "finetune.epochs": at_least(0),
    "finetune.steps": at_least(0),
    "finetune.batch_size": COUNT,
    "finetune.lr_generator": at_least(0),
    "finetune.lr_discriminator": at_least(0),
    "finetune.discriminator_steps": COUNT,
    "finetune.checkpoint_every": COUNT,
    "finetune.log_every": COUNT,
    "finetune.sample_every": COUNT,
    "distill.widths": each(COUNT),
    "distill.blocks": at_least(0),
    "distill.poses": at_least(2),
    "distill.driver_share": between(0, 1),
    "distill.holdout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "distill.max_rotation": between(0, 90),
    "distill.max_scale": between(0, 0.5),
    "distill.max_shift": between(0, 1),
    "distill.max_mouth": between(0, 1),
    "distill.max_eye": between(0, 3),
    "distill.steps": COUNT,
    "distill.batch_size": COUNT,
    "distill.lr": POSITIVE,
    "distill.l1_weight": at_least(0),
    "distill.perceptual_weight": at_least(0),
    "distill.perceptual_crop": at_least(16),
    "distill.perceptual_layers": between(1, 5),
    "distill.checkpoint_every": COUNT,
    "distill.log_every": COUNT,
    "distill.sample_every": COUNT,
    "eval.shots": each(COUNT),
    "eval.holdout_frames": COUNT,
    "eval.max_videos": at_least(0),
    "seed": at_least(0),
    "device": (_device, "'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'"),
}

# Relations between fields: (keys, is it allowed, what is allowed).
RELATIONS: list[tuple[tuple[str, ...], Callable[..., bool], str]] = [
    (
        ("model.generator_bottleneck_resolution", "model.image_size"),
        lambda bottleneck, size: bottleneck <= size,
        "the bottleneck resolution must not exceed model.image_size",
    ),
    (
        ("model.encoder_final_resolution", "model.image_size"),
        lambda final, size: final < size,
        "the encoder's final resolution must be below model.image_size",
    ),
    (
        ("loss.random_perceptual_networks", "loss.vgg19_weights", "loss.vggface_weights"),
        lambda random, vgg19, vggface: not random or (vgg19 is None and vggface is None),
        "random perceptual networks ignore weight files: unset the paths or set "
        "loss.random_perceptual_networks=false",
    ),
    (
        ("finetune.epochs", "finetune.steps"),
        lambda epochs, steps: epochs > 0 or steps > 0,
        "fine-tuning needs finetune.epochs > 0 or finetune.steps > 0",
    ),
]


def value_of(config: Any, key: str) -> Any:
    for name in key.split("."):
        config = getattr(config, name)
    return config


def problems(config: Any) -> list[str]:
    """Every value out of range, as 'key: value is not allowed (allowed: ...)'."""
    found = []
    for key, (allowed, text) in LIMITS.items():
        value = value_of(config, key)
        if not allowed(value):
            found.append(f"{key}: {value!r} is out of range (allowed: {text})")
    for keys, allowed, text in RELATIONS:
        values = [value_of(config, key) for key in keys]
        if not allowed(*values):
            shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, values, strict=True))
            found.append(f"{shown}: {text}")
    return found
