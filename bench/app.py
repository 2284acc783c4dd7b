"""The app: time from `python app.py` to a usable page, and the browser webcam's frame rate
against webcam_inference.py driving the same person model from the same frames.

    python -m bench.app --model META --person PERSON [--person PERSON2 ...] [--video FILE]
        [--runs 3] [--seconds 20] [--write]

Time to page: from starting the process to the Person tab's button in a headless Chromium
(median of --runs). Webcam: Chromium's fake camera plays --video (default: the bundled Grace
Hopper clip at 640x480) at each --camera-fps (default 60, so that a fast avatar's rate is not
only the camera's, and a webcam's 30); the page's live line (webapp/live_page.js: frames
presented by the page's video, and the server's latency from a camera frame's arrival to its
avatar sent) is read every second after 5 s of warm-up (medians). webcam_inference.py drives
the same video into an mp4 without a window (its throughput: no camera holds it to the
camera's rate); the ratio is to the lower of it and the camera's rate. Needs Chromium
(webapp/browser.py).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from bench.results import machine_line, report
from dataset.synthetic import face_pictures, moving_clip, still_frame, write_video
from dataset.video import iter_frames
from webapp import browser as chromium


def time_to_page(model: Path, work: Path) -> tuple[float, float]:
    """(seconds to 'ready' in the log, seconds to a usable page) from starting app.py."""
    start = time.perf_counter()
    process, url = chromium.start_app(["--model", str(model), "--workdir", str(work)], work / "log")
    ready = time.perf_counter() - start
    page = chromium.open_browser(url)
    usable = time.perf_counter() - start
    page.quit()
    process.terminate()
    process.wait(30)
    return ready, usable


def browser_fps(url: str, camera: Path, person: Path, seconds: float) -> tuple[float, float, str]:
    """(frames/s shown by the page, latency ms in the server, the page's last line): medians."""
    page = chromium.open_browser(url, camera)
    try:
        chromium.upload(page, "person-file", person)
        chromium.open_tab(page, "Drive")
        chromium.start_webcam(page)
        chromium.text_of(page, "live-fps", "ms from a camera frame's arrival")
        time.sleep(5)
        rates, latencies, line = [], [], ""
        for _ in range(int(seconds)):
            time.sleep(1)
            line = page.find_element("id", "live-fps").text
            rates.append(float(line.split(" frames/s")[0]))
            latencies.append(float(re.search(r"; (\d+) ms from", line).group(1)))
        return statistics.median(rates), statistics.median(latencies), line
    finally:
        page.quit()


def cli_fps(person: Path, video: Path, out: Path) -> float:
    result = subprocess.run(
        [
            *(sys.executable, "webcam_inference.py", "--model", str(person)),
            *("--source", str(video), "--output", str(out), "--no-window", "--overwrite"),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=True,
    )
    return float(re.search(r"\(([\d.]+) fps", result.stdout).group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="meta-model for the page")
    parser.add_argument("--person", type=Path, action="append", required=True)
    parser.add_argument("--video", type=Path, help="what the camera plays")
    parser.add_argument(
        "--camera-fps", type=int, nargs="+", default=[60, 30], help="the camera's frame rates"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    if chromium.missing():
        parser.error(chromium.missing())
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.video is None:
            still, points = still_frame(face_pictures()["grace_hopper"], 480)
            frames = [
                cv2.copyMakeBorder(f, 0, 0, 80, 80, cv2.BORDER_REPLICATE)
                for f in moving_clip(still, points, 0, 150)[0]
            ]
        else:
            frames = list(iter_frames(args.video))
        video = work / "camera.mp4"
        write_video(video, frames)
        times = [time_to_page(args.model, work / f"page{i}") for i in range(args.runs)]
        lines = [
            machine_line(),
            f"camera: {frames[0].shape[1]}x{frames[0].shape[0]}, {len(frames)} frames (WebRTC, "
            "host candidates); webcam_inference.py: the same frames from an mp4",
            f"time to 'ready' (median of {args.runs}): "
            f"{statistics.median(t[0] for t in times):.1f} s; to a usable page in Chromium: "
            f"{statistics.median(t[1] for t in times):.1f} s",
            "",
            "| person model | camera fps | page fps | page's latency | webcam_inference.py fps | "
            "ratio | page's last line |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        process, url = chromium.start_app(
            ["--model", str(args.model), "--workdir", str(work / "app")], work / "app.log"
        )
        try:
            for person in args.person:
                cli = cli_fps(person, video, work / "cli.mp4")
                for rate in args.camera_fps:
                    camera = work / f"camera{rate}.y4m"
                    chromium.write_camera_video(frames, camera, rate)
                    fps, latency, line = browser_fps(url, camera, person, args.seconds)
                    lines.append(
                        f"| {person.name} | {rate} | {fps:.1f} | {latency:.0f} ms | {cli:.1f} | "
                        f"{fps / min(cli, rate):.2f}x of the lower | {line} |"
                    )
        finally:
            process.terminate()
            process.wait(30)
    report("bench.app", "\n".join(lines), args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
