"""bench/person_cuts.py, the evaluation set of cuts between real people: the videos it writes
say who is in each frame, and its count of records holding two people reads the store right."""

from __future__ import annotations

import numpy as np

from bench.person_cuts import FIRST_SHOT, SECOND_SHOTS, Video, build_set, evaluate, shot
from dataset.store import VideoRecord, write_record
from dataset.video import frame_count


def test_a_short_clip_is_played_back_and_forth():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(4)]
    values = [int(f[0, 0, 0]) for f in shot(frames, 2, 8)]
    assert values == [2, 3, 2, 1, 0, 1, 2, 3]


def test_the_set_has_every_ordered_pair_and_each_person_alone(tmp_path):
    clips = {
        name: [np.full((512, 512, 3), value, np.uint8)] * 5
        for name, value in (("a", 40), ("b", 200))
    }
    videos = build_set(clips, tmp_path, "mp4v")
    cuts = {v.identity: v for v in videos if v.group == "cut"}
    assert sorted(cuts) == ["cut_a_b", "cut_b_a"]
    ab = cuts["cut_a_b"].people
    assert ab == ("a",) * FIRST_SHOT + ("b",) * SECOND_SHOTS[0]
    assert sorted(v.identity for v in videos if v.group != "cut") == [
        "jump_a",
        "jump_b",
        "one_a",
        "one_b",
    ]
    assert frame_count(tmp_path / "cut_a_b" / "clip" / "00001.mp4") == len(ab)


def test_a_record_holding_both_people_is_counted_as_mixed(tmp_path):
    people = ("a",) * 6 + ("b",) * 4
    videos = [Video("cut", "cut_a_b", people), Video("cut", "cut_b_a", people[::-1])]
    for video, kept in ((videos[0], [0, 1, 2, 7]), (videos[1], [0, 1, 2])):
        record = VideoRecord(
            video.identity,
            "clip",
            [b"jpeg"] * len(kept),
            np.zeros((len(kept), 68, 2), np.float32),
            np.zeros((len(kept), 2, 3)),
            ["00001.mp4"],
            np.zeros(len(kept), int),
            np.array(kept),
        )
        write_record(tmp_path, record)
    result = evaluate(videos, tmp_path, frames_per_video=10)
    assert result["mixed"] == ["cut_a_b/clip"] and result["cuts_separated"] == 1
    assert result["cut_main_frames_lost"] == (6 - 3) + (4 - 3)
