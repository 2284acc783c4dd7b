"""One configuration system for every script: typed dataclasses, YAML files, CLI overrides.

A run's configuration is a YAML file from ``params/`` (``default.yaml`` is the paper at
256 px, ``tiny.yaml`` the small model the tests use) plus ``--set section.field=value``
overrides. Unknown keys and ill-typed values are errors that name the key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from params.limits import problems
from utils.files import atomic_write_bytes
from utils.images import MAX_IMAGE_PIXELS

PARAMS_DIR = Path(__file__).resolve().parent


@dataclass
class ModelConfig:
    """Sizes of embedder, generator and discriminator (SPEC section 2)."""

    image_size: int = 256
    # Channels after the first downsampling block; each further halving of the resolution
    # doubles them, up to max_channels.
    base_channels: int = 64
    max_channels: int = 512
    # Width of the embedding e and of the discriminator's V, W, w_0 (paper: 512).
    embedding_dim: int = 512
    # Embedder and discriminator downsample to this resolution before sum pooling.
    encoder_final_resolution: int = 4
    # The generator downsamples to this resolution, runs its bottleneck blocks there,
    # then upsamples back to image_size.
    generator_bottleneck_resolution: int = 16
    generator_bottleneck_blocks: int = 5
    # Self-attention placement (resolutions; 0 disables one).
    encoder_attention_resolution: int = 32
    generator_down_attention_resolution: int = 32
    generator_up_attention_resolution: int = 64
    upsample_mode: str = "nearest"  # 'nearest' | 'bilinear'
    # 'tanh' gives [-1, 1], 'sigmoid' gives [0, 1]; dataset images use the same range.
    output_activation: str = "tanh"


@dataclass
class LossConfig:
    """Loss weights and the perceptual networks (SPEC section 3)."""

    vgg19_weight: float = 1.5e-1
    vggface_weight: float = 2.5e-2
    feature_matching_weight: float = 10.0
    match_weight: float = 10.0
    # Weight of each of the five content layers, shallow to deep.
    vgg19_layer_weights: list[float] = field(default_factory=lambda: [1.0] * 5)
    vggface_layer_weights: list[float] = field(default_factory=lambda: [1.0] * 5)
    # Whether W_i also receives the match loss gradient (besides the hinge loss).
    match_loss_updates_w: bool = True
    # torchvision VGG19 ImageNet state dict; null = torchvision's cache (downloaded when online).
    vgg19_weights: str | None = None
    # VGGFace state dict written by `python -m loss.convert_vggface`, or one converted elsewhere;
    # then vggface_input_order must say which colour order its first layer expects: 'bgr'
    # (Caffe conversions) or 'rgb' (MatConvNet's vgg_face). Our converter's files say it.
    vggface_weights: str | None = None
    vggface_input_order: str | None = None
    # Randomly initialised VGG19/VGGFace: only for tests and smoke runs, never for training.
    random_perceptual_networks: bool = False


@dataclass
class OptimConfig:
    """Adam settings; two discriminator steps per generator step (TTUR)."""

    lr_generator: float = 5e-5
    lr_discriminator: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.0, 0.999])
    discriminator_steps: int = 2


@dataclass
class DataConfig:
    """Preprocessed data and episode sampling (SPEC sections 1 and 3)."""

    store: str = "data/store"
    # Frames sampled per video, evenly spaced across all of its clips.
    frames_per_video: int = 32
    k_shot: int = 8
    detector: str = "dlib"  # 'dlib' | 'fan'
    batch_size: int = 8
    num_workers: int = 4
    # The one face crop (dataset/face.py), framed like VoxCeleb2's own 224 px frames: the 68
    # landmarks of a frontal face span face_width of the crop side, and the eyes' centre line
    # sits at eye_line of the crop side from the top. The box is moved inside the frame where
    # it fits; where it is larger than the frame, the missing part is filled by crop_padding
    # ('replicate': edge pixels repeated; 'black').
    face_width: float = 0.52
    eye_line: float = 0.28
    crop_padding: str = "replicate"
    # Temporal stabilisation of the crop box (dataset/stabilizer.py). Preprocessing averages
    # the box over stabilizer_radius frames before and after each stored frame (0: per-frame
    # boxes); live streams use a causal One Euro filter (min cutoff in Hz, speed coefficient).
    stabilizer_radius: int = 3
    stabilizer_min_cutoff: float = 0.5
    stabilizer_beta: float = 2.0
    # Live driving also filters the driver's landmarks (One Euro per coordinate, speeds in face
    # radii per second): a still face's points jitter 0.2 px per frame instead of 1.2, fast
    # motion lags half a frame at most (bench/landmark_filter.py).
    stabilizer_landmarks: bool = True
    stabilizer_landmark_min_cutoff: float = 0.5
    stabilizer_landmark_beta: float = 10.0
    # Tracking (dataset/landmarks.py): a full-frame detection at least every redetect_every
    # frames; the tracker moves to the largest face when the tracked one is smaller than it by
    # more than switch_face_ratio (side lengths). FAN's mean heatmap score below
    # fan_min_confidence counts as a lost face. A frame whose 32 px thumbnail differs from the
    # previous one's by more than cut_threshold (mean, as a fraction of 255) is a shot cut and
    # starts a new track (fast head motion in real footage: up to 0.08; a cut: 0.2-0.3).
    redetect_every: int = 10
    # Faces narrower than min_face_size px (landmark span, in the input frame) are too small to
    # crop and are reported as such; detection enlarges frames as far as needed to find them.
    min_face_size: float = 40.0
    switch_face_ratio: float = 1.4
    fan_min_confidence: float = 0.2
    cut_threshold: float = 0.15
    # One person per record (dataset/identity.py): shots are grouped into people by their mean
    # dlib face descriptors, the main person is kept, and within it frames farther than
    # identity_threshold from the person seen most are dropped.
    identity_check: bool = True
    identity_threshold: float = 0.6
    # JPEG quality of the frames in the store (OpenCV scale, 0-100).
    jpeg_quality: int = 95
    # A video is skipped when fewer sampled frames than this have a face (an episode needs
    # k_shot + 1 distinct frames).
    min_face_frames: int = 9
    # Images (photos, frames of a folder) larger than this many pixels are refused before they
    # are decoded: a small file can declare 30000x30000 pixels (5.9 GB decoded).
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # Fraction of identities (not videos) held out for validation, chosen by a hash of the name.
    validation_fraction: float = 0.02
    # Probability of a horizontal flip per episode (same flip for all K + 1 frames); 0 = off.
    flip_probability: float = 0.5


@dataclass
class TrainConfig:
    """Meta-training: length, what is written when, and the speed switches (training/)."""

    steps: int = 500_000  # E/G updates in the whole run
    log_every: int = 50  # TensorBoard scalars and the metrics file
    sample_every: int = 1000  # sample grid: TensorBoard and samples/*.png
    checkpoint_every: int = 2000
    validate_every: int = 2000  # feed-forward L1 and SSIM on held-out identities
    validation_episodes: int = 16
    keep_checkpoints: int = 3  # the newest N are kept
    # 'auto': bf16 autocast where the device computes bf16 natively (recent GPUs, CPUs with
    # AVX-512 BF16 or AMX), fp16 with a gradient scaler on older GPUs, else fp32.
    precision: str = "auto"  # 'auto' | 'fp32' | 'bf16' | 'fp16'
    channels_last: bool = True
    compile: bool = False  # torch.compile the networks (slow start, faster steps on GPUs)
    # CUDA: deterministic algorithms, so that a resumed run is bit-identical to one that never
    # stopped (as on a CPU, always); slower. Off: cuDNN's autotuner.
    deterministic: bool = False
    pin_memory: bool = True
    prefetch_factor: int = 2
    # Collapse alarm: generated frames whose per-image standard deviation (in [0, 1] units)
    # stays below collapse_std for collapse_checks logged steps in a row stop the run.
    collapse_std: float = 0.01
    collapse_checks: int = 5


@dataclass
class PersonConfig:
    """Embedding a person from photos or videos (embedder_inference.py, person/embed.py)."""

    frames: int = 32  # T: frames embedded (and fine-tuned on), spread over the inputs
    # Frames looked at per video before the sharpest of each stretch is chosen.
    candidates_per_video: int = 96


@dataclass
class FinetuneConfig:
    """Fine-tuning a person model on its T frames (fine_tuning_training.py, SPEC section 4)."""

    epochs: int = 40  # passes over the T frames; steps = ceil(epochs * T / batch_size)
    steps: int = 0  # when > 0, the number of generator steps instead of epochs
    batch_size: int = 4
    lr_generator: float = 5e-5
    lr_discriminator: float = 2e-4
    discriminator_steps: int = 1
    checkpoint_every: int = 50  # steps between the resumable work checkpoints
    log_every: int = 10
    sample_every: int = 50  # steps between sample grids and loss plots in the work folder


@dataclass
class DistillConfig:
    """The fast avatar: a student generator learnt from a person model (person/distill.py)."""

    # Student (network/student.py): channels at S/2, S/4, ... (at most log2(S) - 2 levels are
    # used: 4x4 is the smallest map), and residual blocks at the smallest resolution.
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    blocks: int = 3
    # Landmark pictures the teacher renders once (its frames are the student's targets): the
    # person's own frames, those frames augmented, and driver motion retargeted onto the face.
    poses: int = 300
    driver_share: float = 0.5  # of the poses, when drivers are given
    holdout: float = 0.15  # share of drivers' frames (their last ones) and of the person's own
    # Augmentation ranges: head rotation (degrees), scale and shift (fractions of the face
    # radius), mouth opening (fraction of the face radius), eye opening (factor 0..max_eye).
    max_rotation: float = 12.0
    max_scale: float = 0.08
    max_shift: float = 0.12
    max_mouth: float = 0.35
    max_eye: float = 1.4
    steps: int = 900
    batch_size: int = 8
    lr: float = 2.0e-3  # Adam, cosine decay to 5% over the steps
    l1_weight: float = 1.0
    # VGG19 (loss.vgg19_weights; random only with loss.random_perceptual_networks) on a random
    # crop of perceptual_crop px of teacher and student frames, the first perceptual_layers of
    # relu1_1 .. relu5_1 (a crop of the first three keeps the term affordable on a CPU).
    perceptual_weight: float = 0.1
    perceptual_crop: int = 64
    perceptual_layers: int = 3
    checkpoint_every: int = 250
    log_every: int = 25
    sample_every: int = 250


@dataclass
class EvalConfig:
    """The paper's self-reenactment protocol (evaluate.py, SPEC section 5)."""

    shots: list[int] = field(default_factory=lambda: [1, 8, 32])  # T
    holdout_frames: int = 32  # frames generated from their own landmarks and compared
    finetune: bool = True  # also evaluate fine-tuned person models (finetune.* settings)
    # Also evaluate a student distilled from the fine-tuned (else feed-forward) person model
    # on poses of its T frames (distill.* settings).
    distill: bool = False
    max_videos: int = 0  # 0: every held-out video
    # Weights of the metrics that need them; unset: reported as unavailable, with the reason.
    fid_inception_weights: str | None = None  # pt_inception-2015-12-05-6726825d.pth
    lpips_alexnet_weights: str | None = None  # alexnet-owt-7be5be79.pth (torchvision)
    arcface_weights: str | None = None  # InsightFace ArcFace ONNX, 112 px (w600k_r50.onnx)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    person: PersonConfig = field(default_factory=PersonConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N'


class ConfigError(ValueError):
    """A configuration file or override that does not fit the dataclasses."""


def validate(config: Config) -> Config:
    """Raise ConfigError naming every value out of its range (params/limits.py); returns config.

    Called wherever a config is made; a command that changes fields afterwards calls it again.
    """
    found = problems(config)
    if found:
        raise ConfigError("; ".join(found))
    return config


def _check_value(value: Any, annotation: Any, key: str) -> Any:
    """Return value converted to annotation's type, or raise ConfigError naming key."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError("; ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_value(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML reads '5e-5' (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported annotation {annotation!r}")


def _merge(instance: Any, values: dict[str, Any], prefix: str) -> None:
    """Set the fields of a dataclass instance from a nested dict, in place."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(type(instance))
    names = {f.name for f in dataclasses.fields(instance)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(names))})")
        current = getattr(instance, name)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{key}.")
        else:
            setattr(instance, name, _check_value(value, hints[name], key))


def apply_override(config: Config, override: str) -> None:
    """Apply one 'section.field=value' override; the value is parsed as YAML.

    ConfigError, in one line naming the override, when it has no '=', its value is not YAML
    (an unclosed list: 'train.steps=[1,'), or the key or value is wrong for the config.
    """
    if "=" not in override:
        raise ConfigError(f"override '{override}' is not of the form section.field=value")
    dotted, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"--set {override}: the value is not YAML ({_yaml_problem(error)}); quote text and "
            "close lists, e.g. --set 'section.field=[1, 2]'"
        ) from error
    for part in reversed(dotted.strip().split(".")):
        value = {part: value}
    _merge(config, value, "")


def load_config_dict(values: dict[str, Any]) -> Config:
    """A config from a nested dict (as saved in checkpoints and model files), checked."""
    config = Config()
    _merge(config, values, "")
    return validate(config)


def _yaml_problem(error: Exception) -> str:
    """A YAML parser's (or decoder's) complaint in one line: what is wrong, and where."""
    problem = getattr(error, "problem", None)
    if problem is None:
        return " ".join(str(error).split())
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file's own values (nested dict); ConfigError if missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with path.open(encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a YAML config file: {_yaml_problem(error)}") from error
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
    return values


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then the overrides, in that order."""
    config = Config()
    if path is not None:
        _merge(config, read_yaml(path), "")
    for override in overrides or []:
        apply_override(config, override)
    return validate(config)


# What a person script may set on top of the meta-model's own config: everything else (sizes,
# output range, framing) must stay as the meta-model was trained, or frames would be made
# differently from its training data (SPEC mistake 5).
RUN_SETTINGS = (
    "person.",
    "finetune.",
    "distill.",
    "eval.",
    "train.",
    "device",
    "seed",
    "loss.vgg19_weights",
    "loss.vggface_weights",
    "loss.vggface_input_order",
    "loss.random_perceptual_networks",
    "data.detector",
    "data.redetect_every",
    "data.min_face_size",
    "data.max_image_pixels",
    "data.switch_face_ratio",
    "data.fan_min_confidence",
    "data.cut_threshold",
    "data.stabilizer_",
)


# What makes a model's frames what they are: a config file may not differ here from the model.
MODEL_MADE = ("model.", "data.face_width", "data.eye_line", "data.crop_padding")


RUN_SETTINGS_HELP = (
    "override a run setting (person, finetune, eval, train, weight paths, device), e.g. "
    "--set person.frames=8 (repeatable); sizes and framing come from the model"
)


def with_run_settings(base: Config, path: str | Path | None, overrides: list[str]) -> Config:
    """base (a model's config) with the run settings of a YAML file and of --set overrides.

    From the file, every run setting it names is taken, and anything else it names must equal
    the model's; an override of anything else is an error.
    """
    config = load_config_dict(to_dict(base))
    if path is not None:
        model, ignored = _flatten(to_dict(config)), []
        for key, value in _flatten(read_yaml(path)).items():
            if key.startswith(RUN_SETTINGS):
                apply_override(config, f"{key}={yaml.safe_dump(value, default_flow_style=True)}")
            elif key in model and value != model[key] and key.startswith(MODEL_MADE):
                raise ConfigError(
                    f"{path}: {key}={value!r} differs from the model's {model[key]!r}; it comes "
                    "from the model and cannot change here (remove it from the file)"
                )
            elif key in model and value != model[key]:
                ignored.append(key)
        if ignored:
            warnings.warn(
                f"{path}: {', '.join(ignored)} ignored: the model's own values are used",
                stacklevel=2,
            )
    for override in overrides:
        key = override.split("=", 1)[0].strip()
        if not key.startswith(RUN_SETTINGS):
            raise ConfigError(
                f"--set {key}: this comes from the model and cannot change here (the person "
                "must be cropped and generated as the model was trained)"
            )
        apply_override(config, override)
    return validate(config)


def add_config_arguments(
    parser: argparse.ArgumentParser,
    default: str | None = str(PARAMS_DIR / "default.yaml"),
    default_help: str | None = None,
) -> None:
    """The --config and --set options that every script shares."""
    parser.add_argument(
        "--config",
        default=default,
        help=f"YAML file from params/ (default: {default_help or default})",
    )
    add_override_argument(parser)


def add_override_argument(
    parser: argparse.ArgumentParser,
    help: str = "override one config field, e.g. --set model.image_size=128 (repeatable)",
) -> None:
    """--set KEY=VALUE, repeatable, collected in args.overrides."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.overrides)


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Config, path: str | Path) -> None:
    """Write a config as YAML, atomically (creating the folder)."""
    atomic_write_bytes(path, yaml.safe_dump(to_dict(config), sort_keys=False).encode())
