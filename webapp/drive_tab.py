"""The Drive tab: a driving video -> an mp4 of the avatar (live/pipeline.py, as
webcam_inference.py drives), and the browser's webcam driving the avatar live."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import cv2
import gradio as gr
import numpy as np

from dataset.video import frame_count
from live.drive import Driver, compose
from live.pipeline import DriveOptions, drive_source
from live.render import make_renderer
from live.retarget import MODES
from live.sources import Frame
from models.person_model import PersonModel, PersonModelError
from webapp.context import USER_ERRORS, AppContext, file_path, say_error

PROGRESS = gr.Progress()  # Gradio fills in the event's own tracker
FPS_WINDOW = 2.0  # seconds of frames the shown frame rate is measured over
SHOWN_HEIGHT = 256  # live pictures of smaller models are shown enlarged to about this
STEADY_LABEL = "steady landmarks (filter the driver's over time)"  # data.stabilizer_landmarks


@dataclass
class LiveSession:
    """One tab's live driving: the person model's driver, and when its frames came out."""

    person: str
    driver: Driver
    frames: int = 0
    times: collections.deque = field(default_factory=collections.deque)  # (end, work seconds)

    def tick(self, work: float) -> tuple[float, float]:
        """Count a frame that took work seconds here: (frames per second, median milliseconds
        of work per frame) over the last FPS_WINDOW seconds."""
        now = time.perf_counter()
        self.frames += 1
        self.times.append((now, work))
        while now - self.times[0][0] > FPS_WINDOW:
            self.times.popleft()
        span = now - self.times[0][0]
        rate = (len(self.times) - 1) / span if span > 0 else 0.0
        return rate, 1e3 * float(np.median([w for _, w in self.times]))


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
        gr.Markdown("### Live: your webcam drives the avatar")
        with gr.Row():
            camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True, elem_id="webcam")
            avatar = gr.Image(label="Avatar", interactive=False, height=360, elem_id="live-avatar")
        with gr.Row():
            live_side = gr.Checkbox(label="driver | landmarks | avatar", value=False)
            live_steady = gr.Checkbox(label=STEADY_LABEL, value=True, elem_id="live-steady")
            recalibrate = gr.Button("Recalibrate (look straight, neutral face)")
        rate = gr.Markdown(elem_id="live-fps")
        live = gr.State(None)
        run.click(self.drive_video, [person_file, video, side, steady, retarget], [driven, status])
        camera.stream(
            self.live_frame,
            [camera, person_file, live_side, live_steady, live],
            [avatar, rate, live],
            stream_every=0.04,
            time_limit=None,
            concurrency_limit=None,
            show_progress="hidden",
        )
        recalibrate.click(self.recalibrate, live, rate)

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

    def live_frame(self, image, person_value, side, steady, session: LiveSession | None):
        if image is None:
            return gr.skip(), gr.skip(), session
        try:
            if session is None or session.person != str(file_path(person_value)):
                session = LiveSession(str(file_path(person_value)), self._driver(person_value))
        except USER_ERRORS as error:
            return None, say_error(error), None
        session.driver.landmark_filter.enabled = bool(steady)
        start = time.perf_counter()
        frame = Frame(np.ascontiguousarray(image[..., :3]), session.frames, 0.0, start)
        driven = session.driver(frame)
        picture = compose(driven, side, False)
        scale = max(1, SHOWN_HEIGHT // picture.shape[0])  # a 64 px model is not a dot on screen
        picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        fps, work = session.tick(time.perf_counter() - start)
        face = "" if driven.face else "; no face: the avatar holds its last frame"
        text = f"{fps:.1f} frames/s in the browser ({work:.0f} ms of work per frame here){face}"
        return picture, text, session

    def _driver(self, person_value) -> Driver:
        person: PersonModel = self.ctx.person_model(person_value)
        run = self.ctx.settings(person.config)
        person.to(run.device)
        renderer = make_renderer(person, "torch", run.device, "auto", False)
        return Driver.from_config(person, run.config, renderer, "auto", 30.0)

    @staticmethod
    def recalibrate(session: LiveSession | None) -> str:
        if session is None:
            return "start the webcam first"
        session.driver.recalibrate()
        return "recalibrated: the current face is the neutral one"
