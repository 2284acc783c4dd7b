"""The Evaluate tab: the person model in use on a clip of the person it was not made from, in
the paper's Table 1 layout (evaluation/: the protocol's crop, metrics and report)."""

from __future__ import annotations

import gradio as gr

from dataset.identity import load_describer
from dataset.landmarks import detector_from_config
from evaluation import protocol
from evaluation.report import aggregate, markdown
from metrics.fid import Fid
from models.person_model import PersonModelError
from webapp.context import USER_ERRORS, AppContext, file_path, say_error


class EvaluateTab:
    def __init__(self, ctx: AppContext, person_file: gr.File) -> None:
        self.ctx = ctx
        gr.Markdown(
            "How well does the person model in use reproduce its person? Upload a clip of the "
            "same person that was **not** used to make it: each frame is generated from its own "
            "landmarks and compared with the real one (SSIM, PSNR, CSIM, AKD; FID and LPIPS "
            "with their weights given as `eval.*` settings at start-up)."
        )
        with gr.Row():
            clip = gr.File(label="Held-out clip", file_types=["video"], elem_id="held-out-clip")
            frames = gr.Number(label="Frames of the clip", value=16, precision=0)
        run = gr.Button("Evaluate", variant="primary", elem_id="evaluate")
        table = gr.Markdown(elem_id="evaluation-table")
        grid = gr.Image(label="real | generated", interactive=False, height=280)
        run.click(self.evaluate, [person_file, clip, frames], [table, grid])

    def evaluate(self, person_value, clip_value, frames, request: gr.Request):
        clip = file_path(clip_value)
        try:
            if clip is None:
                raise PersonModelError("upload a clip of the person first")
            person = self.ctx.person_model(person_value)
            shots = len(person.frames)
            run = self.ctx.settings(person.config, [f"eval.shots=[{shots}]"])
            config = run.config
            describe = load_describer() if config.data.identity_check else None
            video = protocol.clip_frames(
                clip,
                clip.stem,
                config,
                max(2, int(frames)),
                detector_from_config(config),
                describe,
            )
            if video is None:
                raise PersonModelError(f"{clip.name}: fewer than 2 frames with a face")
            tools, unavailable = protocol.metric_tools(config)
            out = self.ctx.workspace(request).free_path(clip.stem + "_evaluation", "")
            person.to(run.device)
            results, generated = protocol.evaluate_person(person, video, run.device, tools)
            protocol.save_video(out, video.key, results, generated)
            per_video = {video.key: results}
            table = aggregate(
                per_video,
                out,
                config,
                lambda: Fid.load(config.eval.fid_inception_weights),
                unavailable,
            )
            what = (
                f"Clip: {clip.name} ({len(video.frames)} frames, none used to make the person "
                f"model), generated from their own landmarks by the {person.kind} model of "
                f"T = {shots} frames; "
            )
            text = markdown(table, config, clip.name, 1, what)
            picture = protocol.grid(out, [video.key], shots, out / "grid.png")
        except USER_ERRORS as error:
            return say_error(error), None
        return text, str(picture)
