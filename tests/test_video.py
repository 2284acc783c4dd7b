"""Reading frames with OpenCV: counts, chosen indices, unreadable files."""

from __future__ import annotations

import numpy as np
import pytest

from dataset.synthetic import write_video
from dataset.video import VideoReadError, frame_count, iter_frames, read_frames


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
