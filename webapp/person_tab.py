"""The Person tab: a meta-model and photos or a clip -> the T crops shown first -> the
feed-forward person model (person/embed.py) -> optionally fine-tuned (fine_tuning_training.py
as a job, with its progress, samples and loss plot, Stop and Resume)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from dataset.face import draw_landmarks
from models.meta_model import MetaModelError
from person.assemble import Candidate, assemble_person
from person.embed import person_frames
from person.finetune import total_steps
from webapp.context import (
    USER_ERRORS,
    AppContext,
    file_path,
    file_paths,
    say_error,
)
from webapp.job_panel import JobPanel


@dataclass
class Preview:
    """The crops shown for a meta-model, inputs and T: what 'Make' embeds without redoing."""

    key: tuple
    chosen: list[Candidate]


def preview_pictures(chosen: list[Candidate], size: int) -> list[tuple[np.ndarray, str]]:
    """Gallery items: crop | landmark picture, captioned with the source (file#frame)."""
    return [
        (np.concatenate([c.crop, draw_landmarks(c.landmarks, size)], axis=1), Path(c.source).name)
        for c in chosen
    ]


def short_names(text: str, paths: list[Path]) -> str:
    """text with each uploaded file's path (in Gradio's cache) said as its name."""
    for path in paths:
        text = text.replace(str(path), path.name)
    return text


def frame_settings(frames) -> list[str]:
    return [f"person.frames={int(frames)}"] if frames else []


class PersonTab:
    def __init__(self, ctx: AppContext, person_file: gr.File) -> None:
        self.ctx = ctx
        gr.Markdown(
            "Choose the meta-model and upload photos and/or a clip of one person. "
            "**Show the crops** to see the T frames (face crop | landmark picture) before "
            "anything is computed, then **Make the person model**; fine-tuning is optional."
        )
        with gr.Row():
            meta = gr.File(
                label="Meta-model (RUN/meta.pt)",
                value=str(ctx.meta) if ctx.meta else None,
                elem_id="meta-file",
            )
            inputs = gr.File(
                label="Photos and/or clips of the person",
                file_count="multiple",
                elem_id="person-inputs",
            )
            frames = gr.Number(label="Frames T (0: the model's)", value=0, precision=0)
        with gr.Row():
            show = gr.Button("Show the crops", elem_id="show-crops")
            make = gr.Button("Make the person model", variant="primary", elem_id="make-person")
        status = gr.Markdown(elem_id="person-status")
        gallery = gr.Gallery(
            label="The T frames: crop | landmark picture",
            columns=4,
            object_fit="contain",
            allow_preview=False,
        )
        state = gr.State(None)
        with gr.Accordion("Fine-tune (optional; minutes on a CPU for a small model)", open=False):
            JobPanel(
                ctx,
                "fine-tuning",
                "finetune",
                self.prepare_tuning,
                (meta, person_file),
                person_file,
                "landmarks | generated | real",
                "Steps (0: finetune.epochs)",
            )
        show.click(self.show, [meta, inputs, frames], [gallery, status, state])
        make.click(self.make, [meta, inputs, frames, state], [person_file, gallery, status, state])

    def _chosen(self, meta_value, inputs, frames, state: Preview | None):
        meta = self.ctx.meta_model(meta_value)
        config = self.ctx.settings(meta.config, frame_settings(frames)).config
        key = (meta.identity, tuple(map(str, file_paths(inputs))), config.person.frames)
        if state is not None and state.key == key:
            return meta, state, []
        paths = file_paths(inputs)
        chosen, collected = person_frames(paths, config)
        return meta, Preview(key, chosen), [short_names(line, paths) for line in collected.notes()]

    def show(self, meta_value, inputs, frames):
        try:
            meta, preview, notes = self._chosen(meta_value, inputs, frames, None)
        except USER_ERRORS as error:
            return [], say_error(error), None
        size = meta.config.model.image_size
        lines = [f"{len(preview.chosen)} frame(s) will be embedded.", *notes]
        return preview_pictures(preview.chosen, size), "\n\n".join(lines), preview

    def make(self, meta_value, inputs, frames, state, request: gr.Request):
        try:
            meta, preview, notes = self._chosen(meta_value, inputs, frames, state)
            person = assemble_person(meta, preview.chosen)
            out = self.ctx.workspace(request).free_path("person", ".pt")
            person.save(out)
        except USER_ERRORS as error:
            return None, gr.skip(), say_error(error), state
        pictures = preview_pictures(preview.chosen, meta.config.model.image_size)
        text = (
            f"wrote {out.name}: {len(person.frames)} frame(s) embedded (meta-model {meta.identity})"
        )
        return str(out), pictures, "\n\n".join([text, *notes]), preview

    def prepare_tuning(self, meta_value, person_value, sets, workspace, resume_out):
        """fine_tuning_training.py's arguments for the person model in use (JobPanel)."""
        meta_path = file_path(meta_value) or self.ctx.meta
        person = self.ctx.person_model(person_value)
        if meta_path is None:
            raise MetaModelError("choose the meta-model the person was made with")
        config = self.ctx.settings(person.config, sets).config
        source = file_path(person_value)
        out = resume_out or workspace.free_path(source.stem + "_tuned", ".pt")
        arguments = [
            "fine_tuning_training.py",
            *("--model", str(meta_path), "--person", str(source), "--out", str(out)),
            "--no-progress",
            *[item for value in [*self.ctx.overrides, *sets] for item in ("--set", value)],
            *(["--resume"] if resume_out else []),
        ]
        return arguments, out, total_steps(config, len(person.frames))
