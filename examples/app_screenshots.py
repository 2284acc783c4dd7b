"""The README's pictures of the app: each tab after real use, in a headless Chromium.

    python -m examples.app_screenshots [--demo out/demo] [--out docs/images]

Uses the demo's meta-model and videos (python -m examples.demo): makes the astronaut from the
bundled photo and clip, fine-tunes a few steps, drives the Grace Hopper video and the webcam (a
fake camera playing that video), evaluates it on the held-out astronaut clip, distils
briefly, and saves app_person.png, app_drive.png, app_fast.png and app_evaluate.png.
Needs Chromium (webapp/browser.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from dataset.video import iter_frames
from webapp import browser as chromium


def shoot(page, element_id: str, path: Path) -> None:
    """The element's region of the page, scrolled to the top of the element first."""
    page.execute_script("arguments[0].scrollIntoView()", page.find_element("id", element_id))
    time.sleep(1.0)
    page.save_screenshot(str(path))
    print(f"wrote {path}")


def type_number(page, element_id: str, value: int) -> None:
    field = page.find_element("css selector", f"#{element_id} input")
    field.clear()
    field.send_keys(str(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("out/demo"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args(argv)
    if chromium.missing():
        parser.error(chromium.missing())
    videos = args.demo / "videos"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        camera = chromium.write_camera_video(
            list(iter_frames(videos / "driver.mp4")), work / "camera.y4m"
        )
        process, url = chromium.start_app(
            ["--model", str(args.demo / "run" / "meta.pt"), "--workdir", str(work / "app")],
            work / "app.log",
        )
        page = chromium.open_browser(url, camera, width=1280, height=1500)
        try:
            for name in ("astronaut.jpg", "astronaut_clip.mp4"):
                chromium.upload(page, "person-inputs", videos / "person" / name)
            page.find_element("id", "show-crops").click()
            chromium.text_of(page, "person-status", "will be embedded")
            page.find_element("id", "make-person").click()
            chromium.text_of(page, "person-status", "wrote")
            page.find_element("xpath", "//button[contains(., 'Fine-tune (optional')]").click()
            type_number(page, "fine-tuning-steps", 40)
            page.find_element("id", "fine-tuning-start").click()
            chromium.text_of(page, "fine-tuning-status", "wrote", seconds=900)
            shoot(page, "person-status", args.out / "app_person.png")
            chromium.open_tab(page, "Drive")
            chromium.upload(page, "driving-video", videos / "driver.mp4")
            page.find_element("id", "drive").click()
            chromium.text_of(page, "drive-status", "wrote")
            chromium.start_webcam(page)
            chromium.text_of(page, "live-fps", "frames/s")
            time.sleep(8)
            shoot(page, "driving-video", args.out / "app_drive.png")
            chromium.open_tab(page, "Evaluate")
            chromium.upload(page, "held-out-clip", videos / "held_out" / "astronaut.mp4")
            page.find_element("id", "evaluate").click()
            chromium.text_of(page, "evaluation-table", "Table 1")
            shoot(page, "held-out-clip", args.out / "app_evaluate.png")
            chromium.open_tab(page, "Fast avatar")
            type_number(page, "distillation-steps", 60)
            page.find_element("id", "distillation-start").click()
            chromium.text_of(page, "distillation-status", "wrote", seconds=1800)
            shoot(page, "distill-drivers", args.out / "app_fast.png")
        finally:
            page.quit()
            process.terminate()
            process.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
