"""Short videos of real faces moved by known warps: test data, benchmark input, examples.

The faces are pictures shipped in installed packages (skimage's astronaut, matplotlib's Grace
Hopper), so nothing is downloaded. Landmarks are detected once on the still; each frame is the
still warped by a known small rotation, shift and scaling, so the warped still landmarks are
the ground truth of every frame.

``python -m dataset.synthetic --out DIR`` writes a small VoxCeleb2-style tree.
"""

from __future__ import annotations

import argparse
import functools
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from matplotlib import cbook
from skimage import data

from dataset.face import (
    RADIUS_PER_FACE_WIDTH,
    CropSettings,
    crop_face,
    face_radius,
    transform_points,
)
from dataset.landmarks import make_detector
from utils.folders import is_os_file
from utils.images import read_image

VOXCELEB_SIZE = 224


def voxceleb_framing(size: int) -> CropSettings:
    """VoxCeleb2's own framing (the defaults of data.face_width and data.eye_line)."""
    return CropSettings(size, face_width=0.52, eye_line=0.28)


def face_pictures() -> dict[str, np.ndarray]:
    """RGB pictures of real faces that ship with installed packages."""
    hopper = read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return {"astronaut": data.astronaut(), "grace_hopper": hopper}


@functools.cache
def face_width(name: str) -> float:
    """Width (px) of the face in a bundled picture, from its landmarks (face_radius)."""
    points = make_detector("dlib").detect(face_pictures()[name])
    return face_radius(points) / RADIUS_PER_FACE_WIDTH


def paste_face(canvas: np.ndarray, name: str, width: float, x: int, y: int) -> np.ndarray:
    """Paste a bundled picture into canvas at (x, y), scaled so that its face is width px wide
    (as the detector measures faces); the part outside the canvas is cut off. Returns canvas."""
    picture = face_pictures()[name]
    scale = width / face_width(name)
    small = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = min(small.shape[0], canvas.shape[0] - y), min(small.shape[1], canvas.shape[1] - x)
    canvas[y : y + h, x : x + w] = small[:h, :w]
    return canvas


def still_frame(picture: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A face-centred frame cut from a picture, framed like VoxCeleb2's, and its landmarks."""
    detector = make_detector("dlib")
    points = detector.detect(picture)
    if points is None:
        raise ValueError("no face in the picture")
    frame, _, _ = crop_face(picture, points, voxceleb_framing(size))
    frame_points = detector.detect(frame)
    if frame_points is None:
        raise ValueError("no face in the face-centred still")
    return frame, frame_points


def warp(index: int, size: int) -> np.ndarray:
    """The known 2x3 motion of frame index: rotation up to 6 degrees, scaling up to 6 %, shift
    up to 8 px (at 192 px; proportional at other sizes), periodic over 12 frames."""
    phase = 2.0 * np.pi * index / 12.0
    matrix = cv2.getRotationMatrix2D(
        (size / 2.0, size / 2.0), 6.0 * np.sin(phase), 1.0 + 0.06 * np.cos(phase)
    )
    matrix[:, 2] += (size / 192.0) * np.array([8.0 * np.sin(phase), 5.0 * np.cos(phase)])
    return matrix


def write_video(
    path: Path, frames: list[np.ndarray], fps: float = 25.0, lossless: bool = False
) -> None:
    """Write RGB frames as a video file: MPEG-4 part 2 ('mp4v'), or lossless FFV1 (for .mkv).

    Written with PyAV, whose FFmpeg opens any path: OpenCV's VideoWriter cannot open one with
    non-ASCII characters on Windows. The MPEG-4 settings are the ones VideoWriter used (1.5 bits
    per pixel per second, quantiser from 3, a key frame every 12, bicubic BGR -> YUV, one
    thread), so the videos decode to the same pictures as before, frame for frame.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream("ffv1" if lossless else "mpeg4", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "bgr0" if lossless else "yuv420p"
        if not lossless:
            context = stream.codec_context
            context.bit_rate = round(1.5 * fps * width * height)
            context.gop_size = 12
            context.thread_count = 1  # slices coded by several threads would differ
            context.options = {"qmin": "3"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[..., ::-1]), "bgr24")
            frame = frame.reformat(format=stream.pix_fmt, interpolation="BICUBIC")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def moving_clip(
    still: np.ndarray, points: np.ndarray, first: int, count: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """count warped frames of a still, starting at warp index first, and their true landmarks."""
    size = still.shape[0]
    matrices = [warp(first + i, size) for i in range(count)]
    frames = [
        cv2.warpAffine(still, m, (size, size), borderMode=cv2.BORDER_REPLICATE) for m in matrices
    ]
    truth = np.stack([transform_points(points, m) for m in matrices])
    return frames, truth


def synthetic_voxceleb(root: Path, videos: int, clips: int, frames: int) -> list[Path]:
    """A VoxCeleb2-like tree (224 px, face-centred) of the packaged faces, one identity each."""
    stills = [still_frame(picture, VOXCELEB_SIZE) for picture in face_pictures().values()]
    written = []
    for video in range(videos):
        still, points = stills[video % len(stills)]
        for clip in range(clips):
            clip_frames, _ = moving_clip(still, points, clip * frames, frames)
            path = root / f"id{video:05d}" / f"video{video:02d}" / f"{clip + 1:05d}.mp4"
            write_video(path, clip_frames)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="root of the tree to write")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=12, help="frames per clip")
    args = parser.parse_args(argv)
    if args.out.exists() and any(not is_os_file(p) for p in args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    paths = synthetic_voxceleb(args.out, args.videos, args.clips, args.frames)
    print(f"wrote {len(paths)} clips under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
