"""The Fast avatar tab: the person model in use distilled into a small student
(python -m person.distill as a job), with its progress and landmarks | teacher | student."""

from __future__ import annotations

import gradio as gr

from models.person_model import PersonModelError
from webapp.context import AppContext, file_path, file_paths
from webapp.job_panel import JobPanel


class FastTab:
    def __init__(self, ctx: AppContext, person_file: gr.File) -> None:
        self.ctx = ctx
        gr.Markdown(
            "Distil the person model in use into a student about 300 times cheaper per frame "
            "(for a laptop CPU's live frame rate). The teacher renders the person's poses, "
            "augmented ones and the motion of driving videos you give; the student learns them. "
            "When it is done, the student is the person model in use (Drive tab)."
        )
        drivers = gr.File(
            label="Driving videos whose motion the student should see (optional)",
            file_count="multiple",
            file_types=["video"],
            elem_id="distill-drivers",
        )
        JobPanel(
            ctx,
            "distillation",
            "distill",
            self.prepare,
            (person_file, drivers),
            person_file,
            "landmarks | teacher | student",
            "Steps (0: distill.steps)",
        )

    def prepare(self, person_value, driver_values, sets, workspace, resume_out):
        """python -m person.distill's arguments for the person model in use (JobPanel)."""
        teacher = self.ctx.person_model(person_value)
        if teacher.distilled:
            raise PersonModelError(
                "the person model in use is already a student: distil its teacher instead"
            )
        config = self.ctx.settings(teacher.config, sets).config
        source = file_path(person_value)
        out = resume_out or workspace.free_path(source.stem.removesuffix("_tuned") + "_fast", ".pt")
        drivers = [str(path) for path in file_paths(driver_values)]
        arguments = [
            *("-m", "person.distill", str(source), "--out", str(out), "--no-progress"),
            *(["--drivers", *drivers] if drivers else []),
            *[item for value in [*self.ctx.overrides, *sets] for item in ("--set", value)],
            *(["--resume"] if resume_out else []),
        ]
        return arguments, out, config.distill.steps
