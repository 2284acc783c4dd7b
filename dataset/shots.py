"""Shot boundaries: where a clip cuts from one camera view to another (PySceneDetect).

A cut is a cut: the person after it may be someone else, however alike two people's face
descriptors are (dataset/identity.py compares people shot by shot). PySceneDetect's
ContentDetector scores each frame by its change in hue, saturation and luminance from the
previous one; it is fed the small preview frames that decoding makes anyway
(dataset/video.py: decode's preview), so finding shots costs no second pass over the file.
"""

from __future__ import annotations

import bisect

import cv2
import numpy as np

# PySceneDetect's defaults: a score of 27 (0-255 scale of the mean HSV change) and shots of at
# least 15 frames (a flash or a fast pan does not cut a shot in two).
CUT_THRESHOLD = 27.0
MIN_SHOT_FRAMES = 15


class ShotBoundaries:
    """Fed frames in order (``__call__``), says which shot each frame index belongs to.

    Frames must come in order without gaps; ``shot_of`` counts the cuts at or before an index
    (0 for the first shot). Cuts are final once a frame ``MIN_SHOT_FRAMES`` later has been fed.
    """

    def __init__(self, fps: float = 25.0) -> None:
        from scenedetect import ContentDetector  # here: it loads PyAV, which importers may lack

        self.fps = float(fps)
        self._detector = ContentDetector(threshold=CUT_THRESHOLD, min_scene_len=MIN_SHOT_FRAMES)
        self.cuts: list[int] = []  # frame indices that start a new shot

    def __call__(self, index: int, image: np.ndarray) -> None:
        """Feed an RGB uint8 frame (any size; small previews suffice)."""
        from scenedetect.common import FrameTimecode

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        for cut in self._detector.process_frame(FrameTimecode(index, self.fps), bgr):
            self.cuts.append(cut.frame_num)

    def shot_of(self, index: int) -> int:
        return bisect.bisect_right(self.cuts, index)
