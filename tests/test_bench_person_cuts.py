"""bench/person_cuts.py, the evaluation set of cuts between real people: the videos it writes
say who is in each frame and where each shot starts, a matched second shot takes the first
one's framing and colours, and its counts of records holding two people read the store
right."""

from __future__ import annotations

import cv2
import numpy as np
from synthetic_videos import still_frame

from bench.person_cuts import (
    ALTERNATE,
    DISSOLVE,
    FIRST_SHOT,
    SECOND_SHOTS,
    SHORT,
    SIDE,
    Matcher,
    Video,
    build_set,
    evaluate,
    read_truth,
    shot,
    video_path,
)
from dataset.store import VideoRecord, write_record
from dataset.synthetic import face_pictures
from dataset.video import frame_count
from utils.images import encode_jpeg


def test_a_short_clip_is_played_back_and_forth():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(4)]
    values = [int(f[0, 0, 0]) for f in shot(frames, 2, 8)]
    assert values == [2, 3, 2, 1, 0, 1, 2, 3]


def two_people() -> dict[str, list[np.ndarray]]:
    pictures = face_pictures()
    return {
        "a": [still_frame(pictures["astronaut"], SIDE)[0]] * 3,
        "b": [still_frame(pictures["grace_hopper"], SIDE // 2)[0].repeat(2, 0).repeat(2, 1)] * 3,
    }


def test_the_set_holds_every_group_with_its_truth(tmp_path):
    videos = build_set(two_people(), tmp_path, ["mp4v"])
    by_name = {v.identity: v for v in videos}
    assert sorted(by_name) == sorted(
        [f"{group}_{pair}" for group in ("cut", "matched", "dissolve") for pair in ("a_b", "b_a")]
        + ["alternate_a_b", "alternate_b_a", "short_a_b", "short_b_a"]
        + ["one_a", "one_b", "jump_a", "jump_b"]
    )
    first = ("a",) * FIRST_SHOT
    assert by_name["matched_a_b"].people == first + ("b",) * SECOND_SHOTS[0]
    assert by_name["matched_a_b"].boundaries == (FIRST_SHOT,)
    dissolved = by_name["dissolve_a_b"].people[FIRST_SHOT : FIRST_SHOT + len(DISSOLVE)]
    assert dissolved == ("a", "a", "b", "b")  # who shows more in each blended frame
    assert by_name["alternate_a_b"].boundaries == (50, 75, 125)
    assert by_name["alternate_a_b"].people.count("b") == sum(ALTERNATE[1::2])
    before, inserted, _ = SHORT
    assert by_name["short_a_b"].people[before : before + inserted] == ("b",) * inserted
    assert by_name["short_a_b"].boundaries == (before, before + inserted)
    assert by_name["one_a"].boundaries == ()
    for video in videos:
        assert frame_count(video_path(tmp_path / "mp4v", video, "mp4v")) == len(video.people)
    assert read_truth(tmp_path) == videos
    assert build_set(two_people(), tmp_path, ["mp4v"]) == videos  # written once


def test_a_matched_shot_takes_the_first_shots_framing_and_colours():
    """A second shot framed smaller and off-centre, in other colours, is moved onto the first
    shot's face box and given its colours."""
    reference = still_frame(face_pictures()["astronaut"], SIDE)[0]
    smaller = np.array([[0.8, 0.0, 70.0], [0.0, 0.8, 30.0]])
    other = cv2.warpAffine(reference, smaller, (SIDE, SIDE), borderMode=cv2.BORDER_REPLICATE)
    other = (other * np.array([0.6, 0.85, 0.7])).clip(0, 255).astype(np.uint8)
    match = Matcher()
    placed, matched = match.place([other], reference)[0], match([other], reference)[0]
    mine, theirs = match.box(placed), match.box(reference)
    assert abs(mine.side / theirs.side - 1) < 0.03
    assert np.hypot(mine.center_x - theirs.center_x, mine.center_y - theirs.center_y) < 6
    colours = [image.reshape(-1, 3).mean(axis=0) for image in (matched, reference, other)]
    assert np.abs(colours[0] - colours[1]).max() < 3 < np.abs(colours[2] - colours[1]).max()


def test_a_record_holding_both_people_is_counted_as_mixed(tmp_path):
    people = ("a",) * 6 + ("b",) * 4
    videos = [
        Video("matched", "matched_a_b", people, (6,)),
        Video("matched", "matched_b_a", people[::-1], (4,)),
    ]
    for video, kept in ((videos[0], [0, 1, 2, 7]), (videos[1], [0, 1, 2])):
        record = VideoRecord(
            video.identity,
            "clip",
            [encode_jpeg(np.zeros((64, 64, 3), np.uint8))] * len(kept),
            np.zeros((len(kept), 68, 2), np.float32),
            np.zeros((len(kept), 2, 3)),
            ["00001.mp4"],
            np.zeros(len(kept), int),
            np.array(kept),
        )
        write_record(tmp_path, record)
    found = {"matched_a_b/clip": 1, "matched_b_a/clip": 0}
    result = evaluate(videos, tmp_path, frames_per_video=10, found=found)["groups"]["matched"]
    assert result["mixed"] == ["matched_a_b/clip"] and result["cuts_found"] == 1
    assert result["main_frames_lost"] == (6 - 3) + (4 - 3)


def test_a_matched_shot_keeps_its_own_changes_of_light():
    """One colour mapping for the whole shot: a frame that darkens stays darker than the one
    before (matching each frame alone would flatten it and flicker from frame to frame)."""
    reference = still_frame(face_pictures()["astronaut"], SIDE)[0]
    shot_frames = [reference[:, ::-1].copy(), (reference[:, ::-1] * 0.7).astype(np.uint8)]
    first, darker = Matcher()(shot_frames, reference)
    assert darker.mean() < first.mean() - 10
