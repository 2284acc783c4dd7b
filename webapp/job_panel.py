"""A panel for one kind of long job (fine-tuning, distillation): settings, Start / Stop /
Resume, a live progress bar, the newest sample grid and loss plot, the output to download."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gradio as gr

from webapp.context import USER_ERRORS, AppContext, parse_settings, say_error
from webapp.jobs import Job, watch
from webapp.workspace import Workspace

# prepare(first, second, settings, workspace, resume_out) -> (arguments, out, total steps): the
# command of a job from the values of the panel's two input components and the --set settings
# (resume_out: the stopped job's output to resume, or None); raises one of USER_ERRORS.
Prepare = Callable[..., tuple[list[str], object, int]]


class JobPanel:
    def __init__(
        self,
        ctx: AppContext,
        kind: str,  # 'fine-tuning', 'distillation': the job's name in the page
        section: str,  # its config section: 'finetune', 'distill' (for SECTION.steps)
        prepare: Prepare,
        inputs: tuple[gr.components.Component, gr.components.Component],
        person_file: gr.File,
        sample_label: str,
        steps_label: str,
    ) -> None:
        self.ctx, self.kind, self.section, self.prepare = ctx, kind, section, prepare
        slug = kind.replace(" ", "-")
        with gr.Row():
            steps = gr.Number(label=steps_label, value=0, precision=0, elem_id=f"{slug}-steps")
            extra = gr.Textbox(
                label="Extra settings (--set key=value ...)",
                placeholder="loss.vgg19_weights=/path/vgg19.pth",
                elem_id=f"{slug}-settings",
            )
        with gr.Row():
            start = gr.Button(kind.capitalize(), variant="primary", elem_id=f"{slug}-start")
            stop = gr.Button("Stop (keeps the last saved step)", elem_id=f"{slug}-stop")
            resume = gr.Button("Resume", elem_id=f"{slug}-resume")
        progress = gr.HTML(elem_id=f"{slug}-progress")
        with gr.Row():
            sample = gr.Image(label=sample_label, interactive=False)
            loss = gr.Image(label="loss", interactive=False)
        self.result = gr.File(label=f"Result of the {kind}", interactive=False)
        status = gr.Markdown(elem_id=f"{slug}-status")
        outputs = [progress, sample, loss, self.result, person_file, status]
        given = [*inputs, steps, extra]
        start.click(self.start, given, outputs)
        resume.click(self.resume, given, outputs)
        stop.click(self.stop, None, status)

    def start(self, first, second, steps, extra, request: gr.Request) -> Iterator[tuple]:
        yield from self.run(first, second, steps, extra, request, resume=False)

    def resume(self, first, second, steps, extra, request: gr.Request) -> Iterator[tuple]:
        yield from self.run(first, second, steps, extra, request, resume=True)

    def run(self, first, second, steps, extra, request, resume: bool) -> Iterator[tuple]:
        workspace: Workspace = self.ctx.workspace(request)
        previous = self.ctx.jobs.get(workspace.folder, self.kind)
        try:
            if previous is not None and previous.running():
                raise OSError(f"a {self.kind} of this tab is running: stop it first")
            # A finished job's work folder can outlive it (a file held open on Windows).
            if resume and (previous is None or previous.status == 0 or not previous.work.exists()):
                raise OSError(f"nothing to resume: no stopped {self.kind} in this tab")
            step_setting = [f"{self.section}.steps={int(steps)}"] if steps else []
            arguments, out, total = self.prepare(
                first,
                second,
                [*parse_settings(extra), *step_setting],
                workspace,
                previous.out if resume else None,
            )
        except USER_ERRORS as error:
            yield "", None, None, None, gr.skip(), say_error(error)
            return
        job = Job(arguments, out, total)
        self.ctx.jobs.put(workspace.folder, self.kind, job)
        for bar, sample, loss, out_file, text in watch(job, self.kind):
            in_use = gr.skip() if out_file is None else out_file  # the model in use from now on
            yield bar, sample, loss, out_file, in_use, text

    def stop(self, request: gr.Request) -> str:
        job = self.ctx.jobs.get(self.ctx.workspace(request).folder, self.kind)
        if job is None or not job.running():
            return f"no {self.kind} is running"
        job.stop()
        return "stopping after this step; **Resume** continues from it"
