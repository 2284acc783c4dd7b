"""Landmark detection: accuracy on known motion, tracking, no face, largest face, FAN errors."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_videos import small_then_large_face_video, still_frame

from dataset.face import RADIUS_PER_FACE_WIDTH, face_radius
from dataset.landmarks import (
    DetectorUnavailableError,
    FanBackend,
    LandmarkDetector,
    TrackingSettings,
    _side,
    load_backend,
    make_detector,
)
from dataset.synthetic import face_pictures, moving_clip, paste_face

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut_clip() -> tuple[list[np.ndarray], np.ndarray]:
    still, points = still_frame(face_pictures()["astronaut"])
    return moving_clip(still, points, 0, 12)


def mean_error(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(points - truth, axis=1).mean())


def test_tracking_follows_known_motion_with_few_full_detections(astronaut_clip):
    frames, truth = astronaut_clip
    detector = make_detector("dlib")
    errors = []
    for frame, frame_truth in zip(frames, truth, strict=True):
        points = detector.track(frame)
        assert points is not None and points.shape == (68, 2)
        errors.append(mean_error(points, frame_truth))
    face_size = np.ptp(truth[0], axis=0).max()
    assert max(errors) < 0.04 * face_size, errors  # a few pixels on a ~100 px face
    # Full detections only at the start and every redetect_every (10) frames; one track.
    assert detector.full_detections == 2 and detector.track_id == 1


def test_tracker_moves_from_a_small_face_to_a_large_one_that_appears_later():
    frames, small_box, large_box = small_then_large_face_video(frames_before=4, frames_after=16)
    # Cut detection off: the periodic full detection alone must find the larger face.
    settings = TrackingSettings(redetect_every=5, cut_threshold=1.0)
    detector = make_detector("dlib", settings=settings)

    def inside(points, box):
        (x0, y0), (x1, y1) = box
        return bool(np.all((points >= (x0, y0)) & (points <= (x1, y1))))

    followed = []
    for frame in frames:
        points = detector.track(frame)
        followed.append("small" if inside(points, small_box) else "large")
        assert inside(points, small_box) or inside(points, large_box)
    assert followed[:4] == ["small"] * 4  # alone in view: the small face is the main face
    # The large face appears at frame 4; the next full detection (within 5 frames) moves there.
    switch = followed.index("large")
    assert 4 <= switch <= 4 + 5 and followed[switch:] == ["large"] * (len(frames) - switch)
    assert detector.track_id == 2


def test_a_slightly_larger_face_does_not_steal_the_track():
    frames, _, _ = small_then_large_face_video(4, 8, ratio=1.2, large_face="astronaut")
    settings = TrackingSettings(redetect_every=3, cut_threshold=1.0)
    detector = make_detector("dlib", settings=settings)
    for frame in frames:
        detector.track(frame)
    assert detector.track_id == 1


def test_a_shot_cut_starts_a_new_track_on_the_new_face():
    pictures = face_pictures()
    astronaut, astronaut_truth = moving_clip(*still_frame(pictures["astronaut"]), 0, 4)
    hopper, hopper_truth = moving_clip(*still_frame(pictures["grace_hopper"]), 0, 4)
    detector = make_detector("dlib")
    track_ids = []
    for frame, truth in zip(astronaut + hopper, [*astronaut_truth, *hopper_truth]):
        assert mean_error(detector.track(frame), truth) < 3.0  # right person, right shape
        track_ids.append(detector.track_id)
    assert track_ids == [1] * 4 + [2] * 4


def test_still_detection_finds_the_moved_face(astronaut_clip):
    frames, truth = astronaut_clip
    detector = make_detector("dlib")
    for index in (3, 9):
        assert mean_error(detector.detect(frames[index]), truth[index]) < 4.0
    assert detector.full_detections == 2


def test_no_face_gives_none_and_tracking_recovers(astronaut_clip):
    frames, truth = astronaut_clip
    detector = make_detector("dlib")
    assert detector.track(frames[0]) is not None
    assert detector.track(np.zeros_like(frames[0])) is None  # lost: re-detects, finds nothing
    assert detector.track(np.zeros_like(frames[0])) is None
    points = detector.track(frames[1])
    assert points is not None and mean_error(points, truth[1]) < 4.0
    assert detector.full_detections == 4


def test_largest_face_wins():
    pictures = face_pictures()
    large = still_frame(pictures["astronaut"], 300)[0]
    small = still_frame(pictures["grace_hopper"], 180)[0]
    canvas = np.zeros((300, 560, 3), np.uint8)
    canvas[:, :300], canvas[60:240, 360:540] = large, small
    detector = make_detector("dlib")
    assert detector.detect(canvas[60:240, 360:540]) is not None  # the small face alone is found
    points = detector.detect(canvas)
    assert points is not None and points[:, 0].max() < 300


def test_detectors_share_one_loaded_backend():
    assert make_detector("dlib").backend is make_detector("dlib").backend


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="known: dlib, fan"):
        make_detector("haar")


def test_fan_without_weights_says_where_to_put_them(monkeypatch, tmp_path):
    import face_alignment.api
    import face_alignment.detection.sfd.sfd_detector as sfd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(sfd, "load_state_dict_from_url", offline)
    monkeypatch.setattr(face_alignment.api, "load_file_from_url", offline)
    with pytest.raises(DetectorUnavailableError) as caught:
        load_backend("fan", "cpu")
    message = str(caught.value)
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "2DFAN4" in message and "s3fd" in message and "--detector dlib" in message


class FakeFaceAlignment:
    """Stands in for face-alignment's model: a fixed face, a settable landmark score."""

    def __init__(self, *args, **kwargs) -> None:
        self.face_detector = self
        self.score = 0.9

    def detect_from_image(self, image):
        return [np.array([10.0, 10.0, 30.0, 30.0, 0.99]), np.array([40.0, 40.0, 90.0, 90.0, 0.98])]

    def get_landmarks_from_image(self, image, detected_faces, return_landmark_score):
        (box,) = detected_faces
        points = np.linspace(box[:2], box[2:4], 68)
        return [points], [np.full(68, self.score)], None


def test_fan_adapter_picks_the_largest_face_and_tracks_by_its_confidence(monkeypatch):
    import face_alignment

    monkeypatch.setattr(face_alignment, "FaceAlignment", FakeFaceAlignment)
    detector = LandmarkDetector(FanBackend("cpu"))
    model = detector.backend._model
    frame = np.zeros((100, 100, 3), np.uint8)
    points = detector.track(frame)
    assert points.shape == (68, 2) and points[:, 0].min() == 40.0  # the larger face
    detector.track(frame)
    assert detector.full_detections == 1  # followed, not re-detected
    model.score = 0.05  # FAN's heatmaps no longer see a face: lost
    assert detector.track(frame) is None
    assert detector.full_detections == 2


def grey(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 110, np.uint8)


@pytest.mark.parametrize(
    ("name", "width", "height", "face"),
    [("astronaut", 4000, 3000, 216), ("grace_hopper", 8000, 6000, 400)],
)
def test_a_small_face_in_a_big_photo_is_found(name, width, height, face):
    """Phone photos: at the 640 px working scale the face is 35 or 32 px, below HOG's ~60 px;
    before, "no face found in any input". The frame is enlarged until it is found."""
    photo = paste_face(grey(width, height), name, face, width // 2, height // 3)
    detector = make_detector("dlib")
    points = detector.detect(photo)
    assert points is not None and detector.faces_seen == 1
    assert face_radius(points) / RADIUS_PER_FACE_WIDTH == pytest.approx(face, rel=0.1)
    assert points[:, 0].min() > width // 2 and points[:, 1].min() > height // 3


def test_a_thumbnail_is_enlarged_to_find_its_face():
    """A 141x182 head-and-shoulders thumbnail: its face (48 px box) needs one upsampling."""
    portrait = face_pictures()["astronaut"][0:333, 80:338]
    thumbnail = cv2.resize(portrait, (141, 182), interpolation=cv2.INTER_AREA)
    assert load_backend("dlib").find_faces(cv2.cvtColor(thumbnail, cv2.COLOR_RGB2GRAY)) == []
    assert make_detector("dlib").detect(thumbnail) is not None


def test_the_smaller_of_two_people_is_seen_and_the_larger_used():
    """1600x1200, faces of 300 and 88 px: the 88 px one is 35 px at the working scale (before:
    lost, so "several faces, the largest was used" was never said)."""
    photo = paste_face(grey(1600, 1200), "astronaut", 300, 100, 200)
    paste_face(photo, "grace_hopper", 88, 1200, 400)
    detector = make_detector("dlib")
    points = detector.detect(photo)
    assert detector.faces_seen == 2
    assert face_radius(points) / RADIUS_PER_FACE_WIDTH == pytest.approx(300, rel=0.1)


def test_a_face_too_small_is_reported_with_its_size():
    """A 30 px face is found (the search goes a little below the minimum) and refused with
    its size; the caller can say so instead of "no face"."""
    photo = paste_face(grey(320, 240), "astronaut", 30, 120, 80)
    detector = make_detector("dlib")
    assert detector.detect(photo) is None
    assert detector.too_small == pytest.approx(30, rel=0.2)
    message = detector.too_small_message()
    assert message.startswith("the face is too small (") and "at least 40 needed" in message


def test_a_small_face_in_an_hd_stream_is_tracked_at_its_own_scale():
    """1920x1080 with a 60 px face (19 px at the working scale): before, no frame had a face;
    now every frame, with one enlarged search at the start."""
    detector = make_detector("dlib")
    found = 0
    for i in range(12):
        frame = paste_face(grey(1920, 1080), "astronaut", 60, 900 + 2 * i, 500)
        found += detector.track(frame) is not None
    assert found == 12
    assert detector.full_detections <= 3


def test_a_stream_without_a_face_enlarges_frames_only_now_and_then(monkeypatch):
    """Live sources keep their speed when nobody is in view: one enlarged search per
    redetect_every frames, the working scale in between."""
    backend = load_backend("dlib")
    calls = []
    original = backend.find_faces
    monkeypatch.setattr(
        backend, "find_faces", lambda p, m=None, e=False: calls.append(m) or original(p, m, e)
    )
    detector = LandmarkDetector(backend, TrackingSettings(redetect_every=5))
    for _ in range(10):
        assert detector.track(grey(640, 480)) is None
    assert [m is not None for m in calls] == [True, False, False, False, False] * 2


class CountingBackend:
    """The dlib backend, counting its window detections (find_face_near)."""

    def __init__(self) -> None:
        self.backend = load_backend("dlib")
        self.windows = 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def find_face_near(self, prepared, box):
        self.windows += 1
        return self.backend.find_face_near(prepared, box)


def face_at(x: int, face: int = 150) -> np.ndarray:
    return paste_face(grey(640, 480), "astronaut", face, x, 120)


def test_a_slowly_moving_face_is_tracked_without_the_window_detector_on_most_frames():
    """The fit in the box that moved with the face is a fixed point: the detector near the box
    runs every confirm_every frames only (before: on every frame), and the points stay on the
    face as a fresh detection finds it."""
    backend = CountingBackend()
    detector, fresh = LandmarkDetector(backend), make_detector("dlib")
    errors = []
    for i in range(30):
        frame = face_at(200 + i)
        errors.append(mean_error(detector.track(frame), fresh.detect(frame)))
    assert max(errors) < 2.0, errors
    # Full detections at frames 0, 10, 20; the window at 5, 15, 25.
    assert detector.full_detections == 3 and backend.windows == 3
    assert detector.track_id == 1


def test_a_fast_move_is_still_followed():
    """A face that jumps by a quarter of its width from one frame to the next: the fit in the
    previous box is off, so the detector near the box finds it and the tracker re-anchors."""
    backend = CountingBackend()
    detector = LandmarkDetector(backend)
    for _ in range(3):
        detector.track(face_at(200))
    windows = backend.windows
    jumped = face_at(240)
    points = detector.track(jumped)
    assert backend.windows == windows + 1
    assert mean_error(points, make_detector("dlib").detect(jumped)) < 3.0
    assert detector.track_id == 1  # the same track


def test_a_face_the_detector_no_longer_sees_is_given_up_within_confirm_every_frames():
    """A face blurred until HOG no longer finds it (a fresh detection gives None) still looks
    like a face to the shape predictor, whose fits stay fixed points; the periodic window
    detection ends the track within confirm_every frames (not only at the full detection)."""
    frame = face_at(200, face=120)
    detector = LandmarkDetector(load_backend("dlib"))
    detector.track(frame)
    x0, y0, x1, y1 = detector._box.astype(int)
    blurred = frame.copy()
    region = (slice(y0 - 30, y1 + 30), slice(x0 - 30, x1 + 30))
    blurred[region] = cv2.GaussianBlur(frame[region], (0, 0), 6)
    assert make_detector("dlib").detect(blurred) is None
    for _ in range(2):
        detector.track(frame)
    lost = [detector.track(blurred) is None for _ in range(12)]
    # confirm_every is 5: the face goes at frame 3, the track by frame 5 (not at frame 10).
    assert True in lost and lost.index(True) <= 2, lost


def test_a_track_whose_box_grew_reanchors_on_the_face_the_detector_finds():
    """A drifted track (on a real clip the box grew frame by frame around a fit spread too
    wide, until its points were a face off): with the box 1.8 times too large, the fit in it
    reproduces its own box better than the fit in the detector's box does, so the tracker must
    choose the fit that agrees with the detector's box."""
    frame = paste_face(grey(640, 480), "grace_hopper", 150, 200, 120)
    detector = LandmarkDetector(load_backend("dlib"))
    truth = detector.track(frame)
    center, half = (detector._box[:2] + detector._box[2:]) / 2, _side(detector._box) * 0.9
    detector._box = np.concatenate([center - half, center + half])
    assert mean_error(detector.track(frame), truth) < 5.0


def test_the_periodic_full_detection_of_a_large_face_works_on_a_smaller_frame(monkeypatch):
    """It looks only for faces from about the tracked one's size up (the tracked face to
    confirm it, larger ones to switch to): a 150 px face in 640x480 is checked at half scale,
    a quarter of the pixels of the working scale."""
    backend = load_backend("dlib")
    scales = []
    original = backend._detect_scaled
    monkeypatch.setattr(
        backend, "_detect_scaled", lambda gray, scale: scales.append(scale) or original(gray, scale)
    )
    detector = LandmarkDetector(backend, TrackingSettings(redetect_every=5, confirm_every=100))
    for i in range(6):
        assert detector.track(face_at(200 + i)) is not None
    assert detector.full_detections == 2 and len(scales) == 2
    assert scales[0] == 1.0 and 0.4 < scales[1] < 0.7, scales


def test_the_window_detector_is_given_contiguous_pixels(monkeypatch):
    """A window that needs no rescaling is a strided view of the frame; dlib's detector read such
    views wrongly (its scores varied from run to run, so tracking did too)."""
    backend = load_backend("dlib")
    arrays = []
    detector = backend._detector
    monkeypatch.setattr(
        backend, "_detector", lambda image, upsample: arrays.append(image) or detector(image, 0)
    )
    gray = cv2.cvtColor(face_at(200), cv2.COLOR_RGB2GRAY)
    backend.find_face_near(gray, np.array([100.0, 100.0, 200.0, 200.0]))  # a 200 px window
    assert arrays[0].shape == (200, 200) and arrays[0].flags["C_CONTIGUOUS"]


def test_two_threads_detecting_and_describing_at_once_do_not_crash_the_process():
    """dlib segfaults when two threads run it at once (seen in the app: the webcam drove while
    the person was evaluated); every dlib call holds one lock. In a child process, so that a
    crash fails this test and not the whole run."""
    code = """
import threading
from dataset.identity import load_describer
from dataset.landmarks import make_detector
from dataset.synthetic import face_pictures, still_frame
still, _ = still_frame(face_pictures()["astronaut"], 224)
def work():
    detector, describe = make_detector("dlib"), load_describer()
    for _ in range(30):
        describe(still, detector.detect(still))
threads = [threading.Thread(target=work) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
