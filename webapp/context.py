"""What every tab of the app shares: the work root, the run settings, loading model files, and
saying an error the way the command lines say it."""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from dataset.clips import PreprocessError
from dataset.landmarks import DetectorUnavailableError
from dataset.store import StoreError
from dataset.video import VideoReadError
from live.sinks import SinkError
from models.meta_model import MetaModel, MetaModelError, load_meta_model
from models.person_model import PersonModel, PersonModelError, load_person_model
from params.config import Config, ConfigError
from person.embed import NoFaceError
from runtime.cli import RunSettings, run_settings
from utils.files import describe_os_error
from webapp.jobs import JobTable
from webapp.workspace import Workspace

# The command lines' user errors: shown in the page as their 'error: ...' line.
USER_ERRORS = (
    MetaModelError,
    PersonModelError,
    ConfigError,
    NoFaceError,
    SinkError,
    VideoReadError,
    DetectorUnavailableError,
    PreprocessError,
    StoreError,
    OSError,
)


def say_error(error: Exception) -> str:
    """The command line's 'error: ...' line for error (Markdown, escaped)."""
    return f"**error:** {html.escape(describe_os_error(error))}"


def file_path(value) -> Path | None:
    """A gr.File value (a path string, a FileData or None) as a path."""
    if value is None:
        return None
    return Path(getattr(value, "path", value))


def file_paths(values) -> list[Path]:
    return [file_path(value) for value in values or []]


@dataclass
class AppContext:
    """root: where each browser tab gets its folder; overrides: --set run settings for every
    step (weight paths, device); meta: the meta-model offered first (or None); ice_servers:
    STUN/TURN URLs for the live webcam (none: host candidates only)."""

    root: Path
    overrides: list[str] = field(default_factory=list)
    meta: Path | None = None
    ice_servers: list[str] = field(default_factory=list)
    jobs: JobTable = field(default_factory=JobTable)

    def workspace(self, request: gr.Request) -> Workspace:
        return Workspace(self.root, request.session_hash or "session")

    def settings(self, base: Config, extra: list[str] = ()) -> RunSettings:
        """base (a model file's config) with --set run settings of the app and then extra;
        ConfigError names a bad one."""
        args = argparse.Namespace(config=None, overrides=[*self.overrides, *extra])
        return run_settings(base, args)

    def meta_model(self, value) -> MetaModel:
        path = file_path(value) or self.meta
        if path is None:
            raise MetaModelError("choose a meta-model file (RUN/meta.pt of a training run)")
        return load_meta_model(path)

    @staticmethod
    def person_model(value) -> PersonModel:
        path = file_path(value)
        if path is None:
            raise PersonModelError(
                "choose a person model: make one in the Person tab or upload one"
            )
        return load_person_model(path)


def parse_settings(text: str) -> list[str]:
    """The 'extra settings' box: key=value per line or separated by spaces (as --set takes)."""
    return [item for item in (text or "").replace("\n", " ").split(" ") if item.strip()]
