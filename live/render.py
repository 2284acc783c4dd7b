"""The person's generator as a renderer for live driving: landmark picture in, frame out.

Everything that can be done once is done once: psi is fixed, spectral normalisation folded into
plain weights (live/export.py: person_network), inference mode, channels-last, and on devices
that compute bf16 natively the weights themselves in bf16 (no per-call casting). torch.compile
(inductor, weights frozen as constants) fuses the remaining elementwise work, and on a GPU
replays the frame as one CUDA graph; the ONNX backend runs the exported model in onnxruntime
instead of PyTorch.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from dataset.value_range import image_to_tensor, tensor_to_image
from live.export import export_person, person_network
from models.person_model import PersonModel
from runtime.compiler import compiler_hint, describe
from runtime.precision import resolve_precision
from utils.device import onnx_providers

BACKENDS = ("torch", "onnx")


def compile_mode(device: torch.device) -> str | None:
    """torch.compile's mode for one frame (batch 1) on device; None is the default mode.

    On a GPU a batch-1 frame is bound by kernel launches, not by arithmetic: "reduce-overhead"
    records the whole call as a CUDA graph and replays it with one launch. A CPU has no
    launches to save, and CUDA graphs do not exist there.
    """
    return "reduce-overhead" if device.type == "cuda" else None


class TorchRenderer:
    def __init__(
        self, person: PersonModel, device: torch.device, precision: str, compile_model: bool
    ) -> None:
        self.activation = person.config.model.output_activation
        self.device = device
        self.precision = resolve_precision(precision, device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            self.precision, torch.float32
        )
        network = person_network(person).to(device, self.dtype)
        self.network = network.to(memory_format=torch.channels_last)
        self._eager = None  # while the first compiled call is to come: the network without it
        if compile_model:
            import torch._inductor.config as inductor

            inductor.freezing = True  # weights become constants: folded and pre-packed
            self._eager = self.network
            self.network = torch.compile(self.network, mode=compile_mode(device))

    @torch.inference_mode()
    def __call__(self, picture: np.ndarray) -> np.ndarray:
        """RGB uint8 landmark picture (S, S, 3) -> RGB uint8 frame (S, S, 3)."""
        tensor = image_to_tensor(picture, self.activation)[None].to(self.device, self.dtype)
        out = self._forward(tensor.contiguous(memory_format=torch.channels_last))
        return tensor_to_image(out[0].float(), self.activation)

    def _forward(self, tensor: torch.Tensor) -> torch.Tensor:
        """The network's output; the first compiled call compiles, and where compiling fails
        (most often: no C++ compiler) the run goes on without it after one warning line."""
        if self._eager is None:
            return self.network(tensor)
        try:
            out = self.network(tensor)
        except Exception as error:  # inductor's many failures: compiler, headers, OpenMP
            warnings.warn(
                f"--compile: torch.compile failed ({describe(error)}); driving without it. "
                f"{compiler_hint(self.device)}",
                stacklevel=2,
            )
            self.network = self._eager
            out = self.network(tensor)
        self._eager = None
        return out


class OnnxRenderer:
    """The exported person generator in onnxruntime (fp32), on device's GPU when it is a CUDA
    GPU and onnxruntime has CUDA, else on the CPU (utils/device.onnx_providers)."""

    def __init__(
        self, person: PersonModel, device: torch.device, threads: int | None = None
    ) -> None:
        import onnxruntime

        self.activation = person.config.model.output_activation
        with tempfile.TemporaryDirectory() as work:
            path = export_person(person, Path(work) / "person.onnx", "onnx")
            options = onnxruntime.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            providers = onnx_providers(device, onnxruntime.get_available_providers())
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)

    def __call__(self, picture: np.ndarray) -> np.ndarray:
        tensor = image_to_tensor(picture, self.activation)[None].numpy()
        (out,) = self.session.run(None, {"landmarks": tensor})
        return tensor_to_image(torch.from_numpy(out[0]), self.activation)


def make_renderer(
    person: PersonModel, backend: str, device: torch.device, precision: str, compile_model: bool
) -> TorchRenderer | OnnxRenderer:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
    if backend == "onnx":
        return OnnxRenderer(person, device, torch.get_num_threads())
    return TorchRenderer(person, device, precision, compile_model)
