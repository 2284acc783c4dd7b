"""Driving the app in a headless Chromium (Selenium), for its test, its benchmark and the
README's screenshots: start the app, open the page, upload, click, wait for text, and a
camera that plays a video file (Chromium's fake capture device).

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) and the
selenium package; nothing is downloaded. ``missing()`` says what is absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120  # seconds for one step of the page (a busy 2-core machine)


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed"
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return (
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install chromium chromium-driver)"
        )
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(arguments: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """python app.py ARGUMENTS --port FREE, once it says it is ready: (process, its URL)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [sys.executable, "app.py", *arguments, "--port", str(port)],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # the log is read as UTF-8
        )
    deadline = time.monotonic() + WAIT
    while "ready at" not in log.read_text(encoding="utf-8", errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = log.read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"the app did not start:\n{output}")
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}/"


def write_camera_video(frames: list[np.ndarray], path: Path, fps: int = 25) -> Path:
    """frames (RGB uint8, even sides) as a .y4m file: what Chromium's fake camera plays."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def open_browser(url: str, camera: Path | None = None, width: int = 1280, height: int = 1600):
    """A headless Chromium at url once the page is usable; camera: a .y4m the webcam plays."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    flags = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]
    flags.append(f"--window-size={width},{height}")
    if camera is not None:
        flags += [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    for flag in flags:
        options.add_argument(flag)
    service = webdriver.ChromeService(shutil.which("chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.get(url)
    wait_for(browser, lambda b: b.find_elements("id", "make-person"))
    return browser


def wait_for(browser, condition, seconds: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds).until(condition)


def upload(browser, element_id: str, path: Path) -> None:
    """Give the file to the upload component #element_id; return once it lists it."""
    field = browser.find_element("css selector", f"#{element_id} input[type=file]")
    field.send_keys(str(path.resolve()))
    wait_for(browser, lambda b: path.stem in b.find_element("id", element_id).text)


def text_of(browser, element_id: str, wanted: str, seconds: float = WAIT) -> str:
    """The element's text once it contains wanted."""
    wait_for(browser, lambda b: wanted in b.find_element("id", element_id).text, seconds)
    return browser.find_element("id", element_id).text


def open_tab(browser, name: str) -> None:
    browser.find_element("xpath", f"//button[@role='tab' and contains(., '{name}')]").click()


def start_webcam(browser) -> None:
    """Start the live webcam (the Drive tab must be open; the fake camera is allowed)."""
    browser.find_element("id", "live-start").click()
