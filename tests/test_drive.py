"""Live driving: video in, mp4 out; face-less frames; retargeting; sinks that cannot open."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import types
from itertools import pairwise

import av
import cv2
import numpy as np
import pytest
import torch
from phone_videos import audio_seconds
from phone_videos import write_video as write_phone_video
from stop_requests import WAYS, ask_to_stop, stop_file
from synthetic_videos import built_store, still_frame

from dataset.face import face_radius
from dataset.landmarks import make_detector
from dataset.synthetic import face_pictures, moving_clip, write_video
from dataset.video import decode, iter_frames, probe
from embedder_inference import main as embed_main
from live.drive import Driver
from live.retarget import Retargeter
from live.sinks import VideoFileSink
from live.sources import Frame
from params.config import PARAMS_DIR, load_config
from training.loop import train
from utils.images import save_image
from webcam_inference import main as drive_main

pytestmark = pytest.mark.filterwarnings("ignore:loss.random_perceptual_networks")


@pytest.fixture(scope="module")
def person_and_driver(tmp_path_factory):
    """A tiny person model of the astronaut, and a video of Grace Hopper to drive it."""
    built = built_store(tmp_path_factory)
    folder = tmp_path_factory.mktemp("drive")
    config = load_config(PARAMS_DIR / "tiny.yaml", [f"data.store={built.store}", "train.steps=2"])
    meta = train(config, folder / "run", progress_bar=False)
    pictures = face_pictures()
    still, points = still_frame(pictures["astronaut"])
    write_video(folder / "astronaut.mp4", moving_clip(still, points, 0, 8)[0])
    person = folder / "astronaut.pt"
    assert (
        embed_main(["--model", str(meta), "--out", str(person), str(folder / "astronaut.mp4")]) == 0
    )
    hopper, hopper_points = still_frame(pictures["grace_hopper"])
    frames = moving_clip(hopper, hopper_points, 0, 12)[0]
    frames[4] = frames[5] = np.full_like(frames[4], 90)  # the driver leaves the picture
    write_video(folder / "driver.mp4", frames)
    return person, folder / "driver.mp4"


def read_video(path):
    return list(iter_frames(path)), probe(path).fps


def test_a_video_drives_the_person_into_an_mp4_of_the_same_frames(
    person_and_driver, tmp_path, capsys
):
    person, driver = person_and_driver
    out = tmp_path / "driven.mp4"
    command = ["--model", str(person), "--source", str(driver), "--output", str(out), "--no-window"]
    assert drive_main([*command, "--side-by-side"]) == 0
    frames, fps = read_video(out)
    assert len(frames) == 12 and fps == pytest.approx(25.0)  # the face-less frames too
    assert frames[0].shape == (64, 3 * 64, 3)  # driver | landmarks | avatar
    printed = capsys.readouterr().out
    assert "retargeting relative" in printed  # Grace Hopper drives the astronaut
    assert "landmarks" in printed and "generate" in printed  # per-stage timings
    # Where the driver's face is missing, the avatar repeats its last frame.
    avatar = [frame[:, 128:] for frame in frames]
    assert np.abs(avatar[4].astype(int) - avatar[3].astype(int)).mean() < 3
    with pytest.raises(SystemExit):  # an existing output is not overwritten
        drive_main(command)


def test_a_phone_video_keeps_its_timing_and_sound(person_and_driver, tmp_path):
    """Variable frame rate (30 fps, then 10 fps) with an AAC track: each output frame is shown
    at its input time, and the sound goes along. (OpenCV's writer spaced frames evenly at the
    average rate: the first 10 fps frame played 0.28 s late here, 0.85 s in a 4 s clip.)"""
    person, _ = person_and_driver
    hopper, points = still_frame(face_pictures()["grace_hopper"])
    times = [i / 30 for i in range(15)] + [0.5 + i / 10 for i in range(6)]
    phone = tmp_path / "phone.mp4"
    write_phone_video(phone, moving_clip(hopper, points, 0, 21)[0], times, audio_seconds=1.1)
    out = tmp_path / "driven.mp4"
    assert (
        drive_main(
            ["--model", str(person), "--source", str(phone), "--output", str(out), "--no-window"]
        )
        == 0
    )
    shown = [frame.time for frame in decode(out)]
    np.testing.assert_allclose(shown, times, atol=1e-3)
    assert audio_seconds(out) == pytest.approx(audio_seconds(phone), abs=0.07)


def test_retargeting_keeps_the_persons_shape_and_moves_the_mouth():
    detector = make_detector("dlib")
    pictures = face_pictures()
    person = detector.detect(still_frame(pictures["astronaut"], 256)[0])
    driver = detector.detect(still_frame(pictures["grace_hopper"], 256)[0])
    opened = driver.copy()
    opened[[56, 57, 58, 65, 66, 67], 1] += 12  # the driver opens the mouth: lower lip down
    opened[5:12, 1] += 8  # and the chin follows
    retarget = Retargeter(person[None], "relative", reference_frames=1)
    neutral = retarget(driver)
    assert np.abs(neutral - person).max() < 1e-3  # at rest: exactly the person's geometry
    moved = retarget(opened)
    scale = face_radius(person) / face_radius(driver)
    gap_driver = (opened[66, 1] - opened[62, 1]) - (driver[66, 1] - driver[62, 1])
    gap_avatar = (moved[66, 1] - moved[62, 1]) - (person[66, 1] - person[62, 1])
    assert gap_avatar == pytest.approx(gap_driver * scale, rel=1e-3)  # the opening transfers
    still = [i for i in range(68) if i not in range(5, 12) and i not in range(48, 68)]
    assert np.abs(moved[still] - person[still]).max() < 1e-3  # the person's shape stays ...
    driver_shape = (driver - driver.mean(axis=0)) * scale + person.mean(axis=0)
    assert np.abs(driver_shape - person).mean() > 2  # ... where the driver's would differ
    absolute = Retargeter(person[None], "absolute")
    assert np.array_equal(absolute(opened), opened.astype(np.float32))


def test_a_virtual_camera_without_a_device_names_what_to_install(person_and_driver, capsys):
    person, driver = person_and_driver
    command = ["--model", str(person), "--source", str(driver), "--no-window", "--virtual-camera"]
    assert drive_main(command) == 2
    error = capsys.readouterr().err
    assert "v4l2loopback" in error or "pip install pyvirtualcam" in error


def test_missing_or_wrong_model_files_are_clear_errors(person_and_driver, tmp_path, capsys):
    _, driver = person_and_driver
    out = ["--source", str(driver), "--no-window", "--output", str(tmp_path / "o.mp4")]
    assert drive_main(["--model", str(tmp_path / "missing.pt"), *out]) == 2
    assert "no person model at" in capsys.readouterr().err
    (tmp_path / "notes.pt").write_text("not a model", encoding="utf-8")
    assert drive_main(["--model", str(tmp_path / "notes.pt"), *out]) == 2
    assert "notes.pt is not a readable person model" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="no virtual display (xvfb-run) here")
def test_the_window_opens_under_a_virtual_display(person_and_driver, tmp_path):
    person, driver = person_and_driver
    command = [
        "xvfb-run",
        "-a",
        sys.executable,
        "webcam_inference.py",
        "--model",
        str(person),
        "--source",
        str(driver),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "12 frames" in result.stdout


def test_the_rest_shape_is_the_mean_of_the_persons_frames():
    """A person of T = 3 different frames: at rest the avatar is drawn with their mean shape."""
    detector = make_detector("dlib")
    shape = detector.detect(still_frame(face_pictures()["astronaut"], 256)[0])
    person = np.stack([shape, shape + np.array([6.0, 0.0]), shape * 1.05])
    retarget = Retargeter(person, "relative", reference_frames=1)
    driver = shape + np.array([3.0, -2.0])
    assert np.abs(retarget(driver) - person.mean(axis=0)).max() < 1e-3


class NoisyStill:
    """A detector on a still face whose landmarks jitter by about 1.5 px a frame."""

    track_id = 0

    def __init__(self, points: np.ndarray) -> None:
        self.points, self.noise = points, np.random.default_rng(0)

    def track(self, image):
        return self.points + self.noise.normal(0, 1.5, self.points.shape)


def test_live_driving_crops_through_the_stabiliser(monkeypatch):
    """A still driver with noisy landmarks: the crop box that Driver uses moves far less than
    the per-frame boxes would."""
    import live.drive as drive
    from dataset.face import CropSettings, face_box
    from dataset.stabilizer import StabilizerSettings

    config = load_config(PARAMS_DIR / "tiny.yaml")
    still, points = still_frame(face_pictures()["grace_hopper"], 256)
    settings = CropSettings.from_config(config)
    person = type("Person", (), {"crop_settings": settings, "landmarks": points[None]})()
    used, per_frame = [], []
    crop = drive.crop_face

    def record(image, landmarks, crop_settings, box):
        for boxes, one in ((used, box), (per_frame, face_box(landmarks, crop_settings))):
            boxes.append([one.center_x, one.center_y, one.side])
        return crop(image, landmarks, crop_settings, box)

    monkeypatch.setattr(drive, "crop_face", record)
    detector = NoisyStill(points)
    stabilizer = StabilizerSettings.from_config(config)
    driver = drive.Driver(person, detector, lambda picture: picture, "absolute", 25.0, stabilizer)
    for index in range(60):
        driver(drive.Frame(still, index, 0.0, index / 25.0))
    moved = np.abs(np.diff(np.stack(used[10:]), axis=0)).mean()
    raw = np.abs(np.diff(np.stack(per_frame[10:]), axis=0)).mean()
    assert moved < 0.3 * raw


def test_a_still_drivers_landmark_picture_is_steady():
    """The landmark pictures the generator gets from a still driver with 1.5 px of detector
    noise: with the landmark filter (the default) they change under 0.4 times as much as with
    data.stabilizer_landmarks=false."""
    import live.drive as drive
    from dataset.face import CropSettings
    from dataset.stabilizer import StabilizerSettings

    still, points = still_frame(face_pictures()["grace_hopper"], 256)
    changes = {}
    for steady in (True, False):
        config = load_config(PARAMS_DIR / "tiny.yaml", [f"data.stabilizer_landmarks={steady}"])
        settings = CropSettings.from_config(config)
        person = type("Person", (), {"crop_settings": settings, "landmarks": points[None]})()
        stabilizer = StabilizerSettings.from_config(config)
        driver = drive.Driver(
            person, NoisyStill(points), lambda picture: picture, "absolute", 30.0, stabilizer
        )
        pictures = [driver(drive.Frame(still, i, 0.0, i / 30.0)).picture for i in range(60)]
        changes[steady] = np.mean(
            [np.abs(b.astype(int) - a).mean() for a, b in pairwise(pictures[10:])]
        )
    assert changes[True] < 0.4 * changes[False]  # 0.32 at 64 px; 0.16 on real 256 px ones


@pytest.mark.parametrize("way", WAYS[1:])
def test_a_stop_keeps_what_was_driven_as_a_playable_mp4(
    person_and_driver, tmp_path, monkeypatch, capsys, way
):
    """kill (SIGTERM), or the stop file, at frame 6 of 12: before, an unplayable temp file
    and no mp4."""
    stop = stop_file(monkeypatch, tmp_path)
    person, driver = person_and_driver
    original, calls = Driver.render, []

    def killed_at_frame_6(self, prepared):
        calls.append(1)
        if len(calls) == 6:
            ask_to_stop(way, stop)
        return original(self, prepared)

    monkeypatch.setattr(Driver, "render", killed_at_frame_6)
    out = tmp_path / "driven.mp4"
    command = ["--model", str(person), "--source", str(driver), "--output", str(out)]
    assert drive_main([*command, "--no-window"]) == 0
    said = capsys.readouterr().out
    assert "interrupted" in said and "ms of CPU per frame over all threads" in said
    assert 5 <= len(list(decode(out))) < 12
    assert not list(tmp_path.glob(".*tmp*"))


def test_sound_that_mp4_cannot_hold_is_reencoded(tmp_path):
    """A .mov with PCM sound: the mp4 gets AAC of the same length (plus the encoder's priming)."""
    source = tmp_path / "camera.mov"
    write_phone_video(
        source,
        [np.zeros((32, 32, 3), np.uint8)] * 10,
        [i / 10 for i in range(10)],
        audio_seconds=1.0,
        audio_codec="pcm_s16le",
    )
    sink = VideoFileSink(tmp_path / "out.mp4", 10.0, audio_from=source)
    for frame in decode(source):
        sink.write(frame.image, frame.time)
    sink.close()
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(1.0, abs=0.1)


def test_outputs_that_cannot_be_written_are_errors_that_leave_nothing(
    person_and_driver, tmp_path, monkeypatch, capsys
):
    """Before: --output x.txt ended in FileNotFoundError on a temp name, and a full disk said
    "wrote d.mp4" with exit 0 over a file without a playable frame."""
    person, driver = person_and_driver
    base = ["--model", str(person), "--source", str(driver), "--no-window", "--output"]
    assert drive_main([*base, str(tmp_path / "x.txt")]) == 2
    assert "not a video file name" in capsys.readouterr().err

    real_open = av.open

    class FullDisk:
        def __init__(self, container):
            self.container, self.muxed = container, 0

        def mux(self, packets):
            self.muxed += 1
            if self.muxed > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.container.mux(packets)

        def __getattr__(self, name):
            return getattr(self.container, name)

    def opened(path, mode="r", **kwargs):
        container = real_open(path, mode, **kwargs)
        return FullDisk(container) if mode == "w" else container

    monkeypatch.setattr(av, "open", opened)
    assert drive_main([*base, str(tmp_path / "d.mp4")]) == 2
    captured = capsys.readouterr()
    assert "cannot write" in captured.err and "No space left on device" in captured.err
    assert "wrote" not in captured.out
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_unreadable_images_of_a_folder_are_skipped_and_counted(person_and_driver, tmp_path, capsys):
    """Before: a traceback from the reader thread, and an mp4 of 0 frames with exit 0."""
    person, driver = person_and_driver
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "000.png").write_bytes(b"not a picture")
    for index, image in enumerate(list(iter_frames(driver))[:3], start=1):
        save_image(image, folder / f"{index:03d}.png")
    out = tmp_path / "out.mp4"
    command = ["--model", str(person), "--source", str(folder), "--no-window", "--output", str(out)]
    assert drive_main(command) == 0
    assert "skipped 1 unreadable image(s): 000.png" in capsys.readouterr().out
    assert len(list(iter_frames(out))) == 3
    for index in (1, 2, 3):
        (folder / f"{index:03d}.png").unlink()
    assert drive_main([*command[:-1], str(tmp_path / "none.mp4")]) == 2
    assert "no frame could be read" in capsys.readouterr().err
    assert not (tmp_path / "none.mp4").exists()


def test_bad_frame_rates_and_unmakeable_outputs_are_messages(person_and_driver, tmp_path, capsys):
    person, driver = person_and_driver
    command = ["--model", str(person), "--source", str(driver), "--no-window"]
    for fps in ("-5", "nan", "1e12", "0"):  # before: tracebacks, or 0 read as "the source's"
        with pytest.raises(SystemExit):
            drive_main([*command, "--output", str(tmp_path / "o.mp4"), "--fps", fps])
    (tmp_path / "file").write_text("in the way", encoding="utf-8")
    assert drive_main([*command, "--output", str(tmp_path / "file" / "x.mp4")]) == 2
    assert "Traceback" not in capsys.readouterr().err


class _AnyDeviceNetwork(torch.nn.Module):
    """A stand-in for the person's generator that stays where it is when moved (no GPU here)."""

    def to(self, *args, **kwargs):
        return self


def test_live_compile_replays_cuda_graphs_on_a_gpu_and_keeps_the_default_on_a_cpu(monkeypatch):
    import torch._inductor.config as inductor

    import live.render as render

    monkeypatch.setattr(render, "person_network", lambda person: _AnyDeviceNetwork())
    modes = []
    monkeypatch.setattr(
        torch, "compile", lambda model, **options: modes.append(options.get("mode")) or model
    )
    model = types.SimpleNamespace(output_activation="tanh")
    person = types.SimpleNamespace(config=types.SimpleNamespace(model=model))
    # Not monkeypatch: its undo deletes the option from inductor's config module.
    with inductor.patch(freezing=inductor.freezing):
        for device in ("cuda", "cpu"):
            render.TorchRenderer(person, torch.device(device), "fp32", compile_model=True)
        assert inductor.freezing
    # A batch-1 frame on a GPU is launch-bound: one CUDA graph replay. The CPU keeps the
    # default mode, with the weights frozen into constants.
    assert modes == ["reduce-overhead", None]


class _LoopbackCamera:
    """pyvirtualcam.Camera as a camera device that readers can see (OBS's virtual camera)."""

    last: np.ndarray | None = None
    device = "OBS Virtual Camera"

    def __init__(self, width, height, fps):
        pass

    def send(self, image):
        _LoopbackCamera.last = image.copy()

    def sleep_until_next_frame(self):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("echo", [True, False])
def test_driving_from_our_own_virtual_camera_is_named(person_and_driver, monkeypatch, capsys, echo):
    """Camera 0 is often OBS's virtual camera on Windows and macOS: with --virtual-camera the
    avatar then drives itself. Shown back (scaled, as cameras do) for 15 frames, it is named;
    a real camera driving the same run is not."""
    import live.pipeline

    person, driver = person_and_driver
    real = [frame.image for frame in decode(driver)]
    monkeypatch.setitem(sys.modules, "pyvirtualcam", types.SimpleNamespace(Camera=_LoopbackCamera))

    class Camera0:
        live, name, fps, file, unreadable = True, "0", 25.0, None, []

        def __init__(self, source, fps=None):
            pass

        def __iter__(self):
            for index in range(30):
                if echo and index >= 3:
                    image = cv2.resize(_LoopbackCamera.last, None, fx=2, fy=2)
                else:
                    image = real[index % len(real)]
                yield Frame(image, index, 0.0, index / 25.0)

        def close(self):
            pass

    monkeypatch.setattr(live.pipeline, "FrameSource", Camera0)
    command = ["--model", str(person), "--source", "0", "--no-window", "--virtual-camera"]
    assert drive_main(command) == (2 if echo else 0)
    error = capsys.readouterr().err
    assert (
        "camera 0 shows what is sent to the virtual camera (OBS Virtual Camera)" in error
    ) == echo


def test_the_pipelined_loop_overlaps_stages_keeps_order_and_flushes_the_last_frame():
    """run_ahead (what drive() prepares frames with): the worker prepares item n+1 while the
    consumer still works on item n, never more than one result waits, and every item comes out
    once, in order, the last one included."""
    import threading
    import time

    from live.ahead import run_ahead

    prepared, overlaps, waiting = [], [], []
    busy = threading.Event()

    def stage(item):
        overlaps.append(busy.is_set())  # the consumer is between taking a result and the next
        time.sleep(0.002 * (item % 3))
        prepared.append(item)
        return item * 10

    out = []
    for result in run_ahead(range(40), stage):
        busy.set()
        waiting.append(len(prepared) - len(out) - 1)  # prepared, not yet taken by the consumer
        time.sleep(0.01)
        out.append(result)
        busy.clear()
    assert out == [10 * i for i in range(40)]
    assert sum(overlaps) >= 30  # the next item's stage ran while this one was worked on
    assert max(waiting) <= 2  # one waiting in the queue, one done and waiting to be put


def test_an_error_in_a_stage_ends_the_loop_after_the_frames_before_it():
    """The worker's error is raised in the consumer at its item, after every earlier result,
    and the worker thread ends; breaking out early stops the worker too."""
    import threading

    from live.ahead import run_ahead

    def stage(item):
        if item == 5:
            raise ValueError("bad frame 5")
        return item

    out = []
    with pytest.raises(ValueError, match="bad frame 5"):
        for result in run_ahead(range(10), stage):
            out.append(result)
    assert out == [0, 1, 2, 3, 4]
    taken = run_ahead(iter(range(10**9)), lambda item: item)
    assert next(taken) == 0
    taken.close()
    assert not [t for t in threading.enumerate() if t.name == "run_ahead"]


@pytest.mark.parametrize("stage", ["prepare", "render"])
def test_an_error_while_driving_leaves_no_half_video(
    person_and_driver, tmp_path, monkeypatch, capsys, stage
):
    """A stage that fails at frame 4, in the worker thread (prepare) or the loop's (render):
    the run ends with the error and neither the mp4 nor a temporary file is left."""
    person, driver = person_and_driver
    original, calls = getattr(Driver, stage), []

    def fails_at_frame_4(self, item):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(errno.EIO, "stage failed")
        return original(self, item)

    monkeypatch.setattr(Driver, stage, fails_at_frame_4)
    out = tmp_path / "driven.mp4"
    command = ["--model", str(person), "--source", str(driver), "--output", str(out)]
    assert drive_main([*command, "--no-window"]) != 0
    assert "error: stage failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("generator_ms", [1, 40])
def test_a_fast_generator_is_pipelined_with_one_thread_less_a_slow_one_is_not(generator_ms):
    """drive() times the generator on one thread less (Driver.generator_ms): under
    FAST_GENERATOR_MS the next frame is prepared in a worker thread and the generator keeps to
    that (the other core prepares); a slow one gets every thread and the stages run one after
    another (a frame prepared ahead would wait a whole generator call). Afterwards the loop's thread
    count is what it was."""
    import threading
    import time

    import live.drive as drive
    from dataset.face import CropSettings
    from dataset.stabilizer import StabilizerSettings

    config = load_config(PARAMS_DIR / "tiny.yaml")
    still, points = still_frame(face_pictures()["grace_hopper"], 256)
    settings = CropSettings.from_config(config)
    person = type("Person", (), {"crop_settings": settings, "landmarks": points[None]})()
    threads, preparers = [], set()

    def generator(picture):
        threads.append(torch.get_num_threads())
        time.sleep(generator_ms / 1e3)
        return picture

    def prepare(frame):
        preparers.add(threading.current_thread().name)
        return type(driver).prepare(driver, frame)

    stabilizer = StabilizerSettings.from_config(config)
    driver = drive.Driver(person, NoisyStill(points), generator, "absolute", 25.0, stabilizer)
    driver.prepare = prepare
    frames = [drive.Frame(still, i, 0.0, i / 25.0) for i in range(12)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        drive.drive(_Frames(frames), driver, [], None, False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    fast = generator_ms < drive.FAST_GENERATOR_MS
    assert threads[:4] == [1] * 4  # timing the generator on what it keeps, pipelined
    assert set(threads[4:]) == {1 if fast else 2} and len(threads) == 4 + 12
    assert preparers == ({"run_ahead"} if fast else {threading.current_thread().name})


class _Frames(list):
    live, name, unreadable = False, "frames", []


def test_overlapping_drives_start_from_the_same_thread_count_and_restore_it():
    """torch's thread count set in one thread is what threads new to torch start with: a drive
    starting beside another (two browser tabs, a live session and a video) must not take the
    first one's lowered count for its own, or the process would be left with fewer threads."""
    import threading

    import live.drive as drive

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen, after = [], []

    def beside():
        with drive._thread_budget() as threads:
            seen.append(threads)
            torch.set_num_threads(max(1, threads - 1))

    try:
        with drive._thread_budget() as threads:
            torch.set_num_threads(max(1, threads - 1))  # the first drive, pipelined
            other = threading.Thread(target=beside)
            other.start()
            other.join()
        fresh = threading.Thread(target=lambda: after.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert seen == [2] and after == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
