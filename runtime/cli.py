"""What every command that runs a model file shares: run settings, device, precision, errors.

embedder_inference.py, fine_tuning_training.py, webcam_inference.py and evaluate.py take a model
file whose config fixes the model, and may change only run settings (params/config.py:
``with_run_settings``) with an optional YAML (--config) and --set. Their outputs are never
replaced unless --overwrite is given, and a user's mistake ends with one 'error:' line and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from params.config import (
    RUN_SETTINGS_HELP,
    Config,
    ConfigError,
    add_override_argument,
    with_run_settings,
)
from runtime.precision import Precision, configure_backends, resolve_precision
from utils.device import DeviceError, describe_device, process_device
from utils.files import describe_os_error

USER_ERROR = 2  # exit status for a mistake in the inputs or settings


def add_run_arguments(parser: argparse.ArgumentParser, config_file: bool = True) -> None:
    """--config FILE (its person/finetune/train/eval sections, when config_file) and --set."""
    if config_file:
        parser.add_argument("--config", help="YAML: its person/finetune/train/eval sections")
    add_override_argument(parser, RUN_SETTINGS_HELP)


def refuse_to_overwrite(
    parser: argparse.ArgumentParser,
    path: Path | None,
    overwrite: bool,
    inputs: Sequence[str | Path] = (),
) -> None:
    """Stop (argparse's exit status 2) when path exists and --overwrite was not given, and
    always when path is one of the command's inputs (--overwrite would destroy it)."""
    if path is None:
        return
    for source in inputs:
        if Path(source).exists() and path.exists() and path.samefile(source):
            parser.error(f"{path} is also an input of this command: choose another output")
    if path.exists() and not overwrite:
        parser.error(f"{path} exists; pass --overwrite to replace it")


@dataclass
class RunSettings:
    config: Config  # the model file's config with this run's settings
    device: torch.device
    precision: Precision


def run_settings(base: Config, args: argparse.Namespace) -> RunSettings:
    """The run's config (ConfigError for a bad --set or file), its device and precision;
    prints the device as one line ('device: cuda:0 (NVIDIA ...)', utils/device.describe_device)."""
    config = with_run_settings(base, getattr(args, "config", None), args.overrides)
    try:
        device = process_device(config.device, None)
    except DeviceError as error:
        raise ConfigError(str(error)) from error
    print(f"device: {describe_device(device)}")
    configure_backends(device, config.train.deterministic)
    return RunSettings(
        config, device, Precision(resolve_precision(config.train.precision, device), device)
    )


def user_error(error: Exception, then: str = "run the same command again") -> int:
    """Print 'error: ...' to stderr; returns the exit status.

    An operating-system error (a full disk, a folder without write access, a missing file)
    is said as 'error: PATH: REASON', without Python's errno decoration; a full disk adds the
    way on, 'free space, then THEN' (utils/files.describe_os_error).
    """
    print(f"error: {describe_os_error(error, then)}", file=sys.stderr)
    return USER_ERROR
