"""Shot boundaries: where a clip cuts from one camera view to another (PySceneDetect).

A cut is a hint that the person may change, not the judge: dataset/identity.py compares people
stretch by stretch, and cuts a shot again wherever its face changes, so a cut no detector sees
is found by the faces. Two of PySceneDetect's detectors are run, and a frame either one reports
starts a shot (chosen by measurement, ``python -m bench.shot_detectors``, docs/DATA.md):
ContentDetector scores each frame by its change in hue, saturation and luminance from the
previous one and finds hard cuts, also between shots whose colours and framing were matched;
HistogramDetector compares luma histograms and finds dissolves and cuts between people in alike
colours that ContentDetector misses, with no false cut on our single-person clips. Both are fed
the small preview frames that decoding makes anyway (dataset/video.py: decode's preview), so
finding shots costs no second pass over the file (about 1 ms per frame).
"""

from __future__ import annotations

import bisect

import cv2
import numpy as np

# PySceneDetect's defaults: a score of 27 (0-255 scale of the mean HSV change), a histogram
# correlation drop of 0.05, and shots of at least 15 frames (a flash or a fast pan does not cut
# a shot in two).
CUT_THRESHOLD = 27.0
MIN_SHOT_FRAMES = 15
SAME_CUT = 3  # frames: two detectors reporting cuts this close report one cut


def default_detectors() -> list:
    """ContentDetector and HistogramDetector, with PySceneDetect's defaults."""
    from scenedetect import ContentDetector, HistogramDetector  # here: it loads PyAV

    return [
        ContentDetector(threshold=CUT_THRESHOLD, min_scene_len=MIN_SHOT_FRAMES),
        HistogramDetector(min_scene_len=MIN_SHOT_FRAMES),
    ]


class ShotBoundaries:
    """Fed frames in order (``__call__``), says which shot each frame index belongs to.

    Frames must come in order without gaps; ``shot_of`` counts the cuts at or before an index
    (0 for the first shot). Cuts are final once a frame ``MIN_SHOT_FRAMES`` later has been fed.
    """

    def __init__(self, fps: float = 25.0, detectors: list | None = None) -> None:
        """detectors: PySceneDetect detectors whose cuts are joined (default:
        ``default_detectors``)."""
        self.fps = float(fps)
        self._detectors = default_detectors() if detectors is None else detectors
        self.cuts: list[int] = []  # frame indices that start a new shot, ascending

    def __call__(self, index: int, image: np.ndarray) -> None:
        """Feed an RGB uint8 frame (any size; small previews suffice)."""
        from scenedetect.common import FrameTimecode

        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        for detector in self._detectors:
            for cut in detector.process_frame(FrameTimecode(index, self.fps), bgr):
                if all(abs(cut.frame_num - known) > SAME_CUT for known in self.cuts):
                    bisect.insort(self.cuts, cut.frame_num)

    def shot_of(self, index: int) -> int:
        return bisect.bisect_right(self.cuts, index)
