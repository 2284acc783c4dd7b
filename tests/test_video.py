"""Reading video files as a player shows them: counts, chosen indices, times, pixel aspect,
rotation, unreadable files."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from phone_videos import numbered_frames
from phone_videos import write_video as write_timed

from dataset.synthetic import write_video
from dataset.video import VideoReadError, decode, frame_count, iter_frames, probe, read_frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """Ten 32 px frames, frame i filled with grey level 20 * i."""
    path = tmp_path_factory.mktemp("video") / "grey.mp4"
    write_video(path, [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(10)])
    return path


def test_count_and_read_every_frame_in_order(video):
    assert frame_count(video) == 10
    levels = [frame.mean() for frame in iter_frames(video)]
    assert len(levels) == 10
    np.testing.assert_allclose(levels, [20 * i for i in range(10)], atol=6)


def test_read_chosen_frames_only(video):
    frames = dict(read_frames(video, [7, 2, 2, 40]))
    assert sorted(frames) == [2, 7]  # 40 is past the end: missing, not an error
    assert frames[2].shape == (32, 32, 3) and frames[2].dtype == np.uint8
    assert abs(frames[7].mean() - 140) < 6


def test_unreadable_files_raise_one_clear_exception(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    for read in (frame_count, lambda p: list(read_frames(p, [0])), lambda p: list(iter_frames(p))):
        with pytest.raises(VideoReadError, match="corrupt.mp4"):
            read(corrupt)
    with pytest.raises(VideoReadError):
        frame_count(tmp_path / "missing.mp4")


def test_an_image_renamed_to_a_video_is_reported_as_an_image(tmp_path):
    from dataset.synthetic import face_pictures
    from utils.images import save_image

    save_image(face_pictures()["astronaut"], tmp_path / "photo.jpg")
    (tmp_path / "photo.jpg").rename(tmp_path / "photo.mp4")
    with pytest.raises(VideoReadError, match="photo.mp4 is a JPEG image, not a video"):
        frame_count(tmp_path / "photo.mp4")


def test_frames_keep_their_times_in_a_variable_frame_rate_clip(tmp_path):
    """2 s at 30 fps then 2 s at 10 fps: frame 60 is 2.000 s in, not 60 / 21.05 = 2.85 s."""
    path = tmp_path / "vfr.mp4"
    times = [i / 30 for i in range(60)] + [2.0 + i / 10 for i in range(20)]
    write_timed(path, numbered_frames(80), times)
    frames = list(decode(path))
    assert [f.index for f in frames] == list(range(80))
    np.testing.assert_allclose([f.time for f in frames], times, atol=1e-4)
    assert abs(frames[60].image.mean() - 180) < 4  # and it is frame 60
    assert probe(path).fps == pytest.approx(21.05, abs=0.01)  # the average: 80 frames / 3.8 s


def test_non_square_pixels_are_shown_square(tmp_path):
    """512x480 stored with SAR 15:16 is shown 480x480: a centred disc stays round."""
    image = np.zeros((480, 512, 3), np.uint8)
    cv2.ellipse(image, (256, 240), (171, 160), 0, 0, 360, (255, 255, 255), -1)  # round when shown
    path = tmp_path / "anamorphic.mp4"
    write_timed(path, [image] * 2, [0.0, 0.04], pixel_aspect=Fraction(15, 16))
    info = probe(path)
    assert (info.width, info.height, info.pixel_aspect) == (480, 480, Fraction(15, 16))
    shown = next(iter_frames(path))
    assert shown.shape == (480, 480, 3)
    rows, cols = np.nonzero(shown[..., 0] > 128)
    assert np.ptp(cols) == pytest.approx(np.ptp(rows), abs=3)  # width of the disc = height


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_a_rotation_tag_turns_the_frames_as_a_player_does(tmp_path, rotation):
    """A landscape-stored 64x48 frame with a white top-left corner and rotation R (degrees
    counter-clockwise, the display matrix's convention) is shown turned by R."""
    image = np.zeros((48, 64, 3), np.uint8)
    image[:8, :8] = 255
    path = tmp_path / "rotated.mp4"
    write_timed(path, [image] * 2, [0.0, 0.04], rotation=rotation)
    shown = next(iter_frames(path))
    expected = np.rot90(image, rotation // 90)
    assert shown.shape == expected.shape
    assert probe(path).rotation == rotation % 360
    assert np.abs(shown.astype(int) - expected).mean() < 6


def test_frame_count_of_a_stream_without_a_count_decodes(tmp_path):
    path = tmp_path / "stream.mkv"  # Matroska stores no frame count
    write_timed(path, numbered_frames(7), [i / 25 for i in range(7)])
    assert probe(path).frames == 0
    assert frame_count(path) == 7
