"""FID (Heusel et al. 2017) with torchmetrics, from a given Inception weight file.

The Inception network of FID is the TensorFlow one ported by torch-fidelity / pytorch-fid
(pt_inception-2015-12-05-6726825d.pth); its path is `eval.fid_inception_weights`. Without it
FID is unavailable, with the reason. Any feature network can be passed instead (tests use a
random one: FID's arithmetic does not depend on which features it compares).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from metrics import Unavailable, WeightsError
from utils.files import load_weights


class Fid:
    """Accumulates real and generated images ([0, 1] floats), then gives the distance."""

    def __init__(self, feature: nn.Module | None = None, weights: str | Path | None = None) -> None:
        if feature is not None:
            self.metric = FrechetInceptionDistance(feature=feature, normalize=True)
        else:
            # torch-fidelity unpickles the file with weights_only=False, which would run any
            # code a pickle holds: it gets a private copy of the tensors we loaded safely.
            state = load_weights(weights, "eval.fid_inception_weights", WeightsError)
            with tempfile.TemporaryDirectory() as folder:
                checked = Path(folder) / "inception.pth"
                torch.save(state, checked)
                self.metric = FrechetInceptionDistance(
                    feature=2048, normalize=True, feature_extractor_weights_path=str(checked)
                )
        self.count = 0

    @classmethod
    def load(cls, path: str | None) -> Fid | Unavailable:
        if path is None:
            return Unavailable(
                "no Inception weights: pass --set eval.fid_inception_weights="
                "pt_inception-2015-12-05-6726825d.pth (torch-fidelity's FID Inception file)"
            )
        try:
            return cls(weights=path)
        except WeightsError as error:
            return Unavailable(str(error))
        except Exception as error:  # torch-fidelity raises various errors for a wrong file
            return Unavailable(f"{path} does not load as FID's Inception ({error})")

    def add(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        self.metric.update(real.float(), real=True)
        self.metric.update(fake.float(), real=False)
        self.count += len(real)

    def compute(self) -> float | Unavailable:
        if self.count < 2:
            return Unavailable("FID needs at least 2 images")
        return float(self.metric.compute())
