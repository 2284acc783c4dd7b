"""The app's page and its command line: python app.py [--host H] [--port P] [--model META]."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out: offline machines

import gradio as gr

from params.config import RUN_SETTINGS_HELP, add_override_argument
from utils.signals import stop_requests_as_ctrl_c
from webapp.context import AppContext
from webapp.drive_tab import DriveTab
from webapp.evaluate_tab import EvaluateTab
from webapp.fast_tab import FastTab
from webapp.person_tab import PersonTab

TITLE = "Few-shot talking heads"
LIVE_PAGE = Path(__file__).with_name("live_page.js")  # the live webcam's side in the page
# System fonts only: the default theme's web fonts would be fetched from the internet.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])


def build(ctx: AppContext) -> gr.Blocks:
    """The page: the person model in use at the top, then the Person, Drive, Fast avatar and
    Evaluate tabs (each over the packages the command lines use)."""
    with gr.Blocks(title=TITLE) as page:
        gr.Markdown(
            f"# {TITLE}\nMake an avatar from a few photos or a clip, fine-tune it, drive it with "
            "a video or your webcam, and distil it into a fast one. Files stay on this machine "
            f"(this tab's folder: under `{ctx.root}`)."
        )
        person_file = gr.File(
            label="Person model in use (download it, or upload one you made before)",
            file_types=[".pt"],
            elem_id="person-file",
        )
        with gr.Tab("Person", id="person"):
            PersonTab(ctx, person_file)
        with gr.Tab("Drive", id="drive"):
            DriveTab(ctx, person_file)
        with gr.Tab("Fast avatar", id="fast"):
            FastTab(ctx, person_file)
        with gr.Tab("Evaluate", id="evaluate"):
            EvaluateTab(ctx, person_file)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The creator's app in the browser.")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--model", type=Path, help="meta-model offered first (RUN/meta.pt)")
    parser.add_argument("--workdir", type=Path, default=Path("out/app"), help="tabs' folders")
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="a STUN/TURN server for the live webcam (stun:HOST:PORT; default: none, for "
        "localhost and the LAN)",
    )
    add_override_argument(parser, RUN_SETTINGS_HELP)
    args = parser.parse_args(argv)
    if args.model is not None and not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    start = time.perf_counter()
    ctx = AppContext(args.workdir.resolve(), args.overrides, args.model, args.ice_server)
    page = build(ctx)
    page.queue(default_concurrency_limit=8)  # one tab's long job never blocks another's
    try:  # Ctrl-C, kill or a closed terminal: jobs (own process groups) are asked to stop
        with stop_requests_as_ctrl_c():
            _, url, _ = page.launch(
                server_name=args.host,
                server_port=args.port,
                allowed_paths=[str(ctx.root)],
                theme=THEME,
                head=f"<script>{LIVE_PAGE.read_text(encoding='utf-8')}</script>",
                ssr_mode=False,
                prevent_thread_lock=True,
                quiet=True,
            )
            took = time.perf_counter() - start
            print(f"ready at {url} in {took:.1f} s (Ctrl-C stops)", flush=True)
            page.block_thread()
    finally:
        ctx.jobs.stop_all()  # running jobs save their step; Resume continues them
    return 0
