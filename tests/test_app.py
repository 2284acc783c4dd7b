"""The browser app (python app.py) driven by a real headless Chromium (webapp/browser.py): the
Person tab makes a person model from the bundled photo, the Drive tab drives the bundled clip
into a video of the same frames and the webcam (a fake camera playing the clip) drives the
avatar live, the Evaluate tab puts the person in the Table 1 layout, and a photo without a
face says so in the page."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from random_models import tiny_meta_model

from dataset.video import frame_count, iter_frames
from utils.images import save_image
from webapp import browser as chromium

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "faces" / "astronaut.jpg"
CLIP = ROOT / "examples" / "videos" / "id00000" / "video00" / "00001.mp4"
if chromium.missing():
    pytest.skip(f"the browser test cannot run: {chromium.missing()}", allow_module_level=True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """python app.py on a free localhost port, with a tiny random meta-model offered first."""
    folder = tmp_path_factory.mktemp("app")
    meta = tiny_meta_model(folder / "m.pt")
    arguments = ["--model", str(meta), "--workdir", str(folder / "work")]
    process, url = chromium.start_app(arguments, folder / "app.log")
    yield url
    process.terminate()
    process.wait(30)


@pytest.fixture
def camera(tmp_path_factory):
    return chromium.write_camera_video(
        list(iter_frames(CLIP)), tmp_path_factory.mktemp("camera") / "clip.y4m"
    )


@pytest.fixture
def page(app, camera):
    browser = chromium.open_browser(app, camera)
    yield browser
    browser.quit()


def make_person(page) -> None:
    chromium.upload(page, "person-inputs", PHOTO)
    page.find_element("id", "make-person").click()
    assert "wrote person.pt: 1 frame(s)" in chromium.text_of(page, "person-status", "wrote")


def test_a_photo_makes_a_person_and_the_bundled_clip_drives_it_into_a_video(page, tmp_path):
    make_person(page)
    chromium.open_tab(page, "Drive")
    chromium.upload(page, "driving-video", CLIP)
    page.find_element("id", "drive").click()
    assert f"{frame_count(CLIP)} frames" in chromium.text_of(page, "drive-status", "wrote")
    video = chromium.wait_for(
        page, lambda b: b.find_element("css selector", "#driven-video video[src]")
    )
    duration = page.execute_async_script(
        "const [v, done] = arguments;"
        "if (v.readyState >= 1) done(v.duration);"
        "else v.addEventListener('loadedmetadata', () => done(v.duration));",
        video,
    )
    assert duration == pytest.approx(frame_count(CLIP) / 25, abs=0.05)  # the clip is 25 fps
    served = tmp_path / "driven.mp4"
    served.write_bytes(urllib.request.urlopen(video.get_attribute("src")).read())
    assert frame_count(served) == frame_count(CLIP)
    assert next(iter_frames(served)).shape == (64, 3 * 64, 3)  # driver | landmarks | avatar


def test_the_webcam_drives_the_avatar_live_with_its_frame_rate_shown(page):
    """Over WebRTC: the avatar's frames arrive in the page's video, the rate line counts them
    and gives the server's latency, and Recalibrate reaches the driver."""
    make_person(page)
    chromium.open_tab(page, "Drive")
    chromium.start_webcam(page)
    rate = chromium.text_of(page, "live-fps", "ms from a camera frame's arrival")
    assert "no face" not in rate  # the fake camera plays a face
    video = page.find_element("id", "live-video")
    assert page.execute_script("return arguments[0].videoWidth", video) == 64  # the tiny model
    first = page.execute_script(
        "return arguments[0].getVideoPlaybackQuality().totalVideoFrames", video
    )
    chromium.wait_for(
        page,
        lambda b: (
            b.execute_script(
                "return arguments[0].getVideoPlaybackQuality().totalVideoFrames", video
            )
            > first + 10
        ),
    )
    shown = chromium.text_of(page, "live-fps", "frames/s in the browser")
    assert float(shown.split(" frames/s")[0]) > 0
    page.find_element("id", "live-recalibrate").click()
    assert "recalibrated" in chromium.text_of(page, "live-fps", "recalibrated")
    page.find_element("id", "live-start").click()  # again: one session, frames counted once
    chromium.text_of(page, "live-fps", "ms from a camera frame's arrival")
    time.sleep(3)
    shown = page.find_element("id", "live-fps").text
    assert 0 < float(shown.split(" frames/s")[0]) < 40  # the fake camera plays 25 frames/s
    page.find_element("id", "live-stop").click()
    chromium.text_of(page, "live-fps", "stopped")
    assert page.execute_script("return arguments[0].srcObject", video) is None


def test_the_person_is_evaluated_on_a_clip_in_the_table_1_layout(page):
    make_person(page)
    chromium.open_tab(page, "Evaluate")
    chromium.upload(page, "held-out-clip", CLIP)
    page.find_element("id", "evaluate").click()
    table = chromium.text_of(page, "evaluation-table", "Table 1")
    assert f"{frame_count(CLIP)} frames, none used to make the person model" in table
    row = next(line for line in table.splitlines() if line.startswith("feed-forward"))
    assert row.split()[1] == "1"  # T: the one photo


def test_a_photo_without_a_face_says_so_in_the_page(page, tmp_path):
    noise = tmp_path / "noise.png"
    save_image(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8), noise)
    chromium.upload(page, "person-inputs", noise)
    page.find_element("id", "show-crops").click()
    message = chromium.text_of(page, "person-status", "error")
    assert "no face found in any input" in message
    assert "Traceback" not in page.find_element("tag name", "body").text
