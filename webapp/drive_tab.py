"""The Drive tab: a driving video -> an mp4 of the avatar (live/pipeline.py, as
webcam_inference.py drives), and the browser's webcam driving the avatar live over WebRTC
(webapp/webrtc.py, webapp/live_page.js)."""

from __future__ import annotations

import asyncio
import json
import logging

import gradio as gr

from dataset.video import frame_count
from live.drive import Driver
from live.pipeline import DriveOptions, drive_source
from live.render import make_renderer
from live.retarget import MODES
from models.person_model import PersonModel, PersonModelError
from webapp.context import USER_ERRORS, AppContext, file_path, say_error
from webapp.webrtc import LiveSessions

PROGRESS = gr.Progress()  # Gradio fills in the event's own tracker
# The live avatar: a video element filled by webapp/live_page.js, small models enlarged.
LIVE_VIEW = (
    '<video id="live-video" autoplay playsinline muted style="width: 100%; max-width: 512px; '
    'image-rendering: pixelated; background: #222"></video><div id="live-fps"></div>'
)
STEADY_LABEL = "steady landmarks (filter the driver's over time)"  # data.stabilizer_landmarks


class DriveTab:
    def __init__(self, ctx: AppContext, person_file: gr.File) -> None:
        self.ctx = ctx
        gr.Markdown(
            "Drive the person model in use (top of the page) with a video, or live with your "
            "webcam. The avatar follows the driver's landmarks; the driver's sound is kept."
        )
        with gr.Row():
            with gr.Column():
                video = gr.File(
                    label="Driving video", file_types=["video"], elem_id="driving-video"
                )
                with gr.Row():
                    side = gr.Checkbox(label="driver | landmarks | avatar", value=True)
                    steady = gr.Checkbox(label=STEADY_LABEL, value=True)
                    retarget = gr.Dropdown(
                        list(MODES), value="auto", label="Retargeting (auto: same person or not)"
                    )
                run = gr.Button("Drive", variant="primary", elem_id="drive")
                status = gr.Markdown(elem_id="drive-status")
            driven = gr.Video(label="Driven", interactive=False, elem_id="driven-video")
        gr.Markdown(
            "### Live: your webcam drives the avatar\n"
            "The webcam goes to this machine and the avatar comes back as live video (WebRTC), "
            "at the command line's rate. The page must be opened as localhost (or over https) "
            "for the browser to give it the camera."
        )
        with gr.Row():
            start = gr.Button("Start webcam", variant="primary", elem_id="live-start")
            stop = gr.Button("Stop", elem_id="live-stop")
            recalibrate = gr.Button(
                "Recalibrate (look straight, neutral face)", elem_id="live-recalibrate"
            )
        gr.HTML(LIVE_VIEW, elem_id="live-view")
        with gr.Row():
            live_side = gr.Checkbox(
                label="driver | landmarks | avatar", value=False, elem_id="live-side"
            )
            live_steady = gr.Checkbox(label=STEADY_LABEL, value=True, elem_id="live-steady")
        live_status = gr.Markdown(elem_id="live-status")
        offer = gr.Textbox(visible=False)
        answer = gr.Textbox(visible=False)
        run.click(self.drive_video, [person_file, video, side, steady, retarget], [driven, status])
        ice = json.dumps(ctx.ice_servers)
        start.click(
            self.start_live,
            [offer, person_file, live_side, live_steady],
            [answer, live_status],
            js=f"async (o, p, s, t) => [await window.talkingHeadsLive.start({ice}), p, s, t]",
        ).then(None, answer, None, js="(a) => window.talkingHeadsLive.answer(a)")
        stop.click(None, js="() => window.talkingHeadsLive.stop('stopped')")
        recalibrate.click(None, js="() => window.talkingHeadsLive.send({action: 'recalibrate'})")
        live_side.change(None, live_side, js="(v) => window.talkingHeadsLive.send({side: v})")
        live_steady.change(None, live_steady, js="(v) => window.talkingHeadsLive.send({steady: v})")
        self.sessions = LiveSessions(ctx.ice_servers)

    def drive_video(
        self,
        person_value,
        video_value,
        side,
        steady,
        retarget,
        request: gr.Request,
        progress=PROGRESS,
    ):
        source = file_path(video_value)
        try:
            if source is None:
                raise PersonModelError("upload a driving video first")
            person = self.ctx.person_model(person_value)
            run = self.ctx.settings(person.config, [f"data.stabilizer_landmarks={bool(steady)}"])
            out = self.ctx.workspace(request).free_path(source.stem + "_driven", ".mp4")
            total = frame_count(source)
            options = DriveOptions(out, side_by_side=side, retarget=retarget)
            summary, driver = drive_source(
                person,
                run.config,
                run.device,
                str(source),
                options,
                lambda done: progress((done, total), desc="driving", unit="frames"),
            )
        except USER_ERRORS as error:
            return None, say_error(error)
        return str(out), f"{summary.describe(driver)}\n\nwrote {out.name}"

    async def start_live(self, offer, person_value, side, steady):
        """The server's answer to the page's offer (webapp/webrtc.py), and a status line."""
        if not offer:
            return "", ""  # no camera: the page says why
        try:
            driver = await asyncio.to_thread(self._driver, person_value)
            driver.landmark_filter.enabled = bool(steady)
            return await self.sessions.answer(offer, driver, bool(side)), ""
        except Exception as error:  # the page's camera must not stay on without a session
            if not isinstance(error, USER_ERRORS):
                logging.getLogger(__name__).exception("the live webcam could not start")
            return "", say_error(error)

    def _driver(self, person_value) -> Driver:
        person: PersonModel = self.ctx.person_model(person_value)
        run = self.ctx.settings(person.config)
        person.to(run.device)
        renderer = make_renderer(person, "torch", run.device, "auto", False)
        return Driver.from_config(person, run.config, renderer, "auto", 30.0)
