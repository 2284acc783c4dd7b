"""Metrics against known answers: SSIM, PSNR (vs scikit-image), FID, CSIM, AKD, LPIPS."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from skimage.metrics import structural_similarity as skimage_ssim
from synthetic_videos import still_frame

from dataset.face import CropSettings, crop_face
from dataset.landmarks import make_detector
from dataset.synthetic import face_pictures, moving_clip
from metrics import Unavailable
from metrics.fid import Fid
from metrics.identity import ArcFaceIdentity, DlibIdentity, csim
from metrics.image import Lpips, psnr, ssim
from metrics.landmarks import akd, interocular


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return still_frame(face_pictures()["astronaut"], 160)[0]


def test_ssim_and_psnr_match_scikit_image(photo):
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    assert ssim(to_tensor(photo), to_tensor(photo)).item() == pytest.approx(1.0, abs=1e-6)
    assert psnr(to_tensor(photo), to_tensor(photo)).item() == float("inf")
    reference_ssim = skimage_ssim(
        noisy,
        photo,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(to_tensor(noisy), to_tensor(photo)).item() == pytest.approx(
        reference_ssim, abs=2e-3
    )
    reference_psnr = skimage_psnr(photo, noisy, data_range=255)
    assert psnr(to_tensor(noisy), to_tensor(photo)).item() == pytest.approx(
        reference_psnr, abs=1e-3
    )


def test_fid_is_near_zero_for_a_set_against_itself_and_large_for_different_sets():
    torch.manual_seed(0)
    features = torch.nn.Sequential(  # a random feature network: FID's arithmetic is the same
        torch.nn.Conv2d(3, 16, 3, stride=4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
    ).eval()
    features.num_features = 64
    faces = torch.rand(40, 3, 32, 32) * 0.5 + 0.25
    same = Fid(feature=features)
    same.add(faces, faces.clone())
    different = Fid(feature=features)
    different.add(faces, torch.rand(40, 3, 32, 32) ** 3)
    assert abs(same.compute()) < 1e-3
    assert different.compute() > 100 * max(abs(same.compute()), 1e-4)


def test_csim_is_higher_for_the_same_person_than_for_two_people():
    detector = make_detector("dlib")
    settings = CropSettings(128, 0.52, 0.28)
    pictures = face_pictures()
    still, points = still_frame(pictures["astronaut"], 200)
    moved = moving_clip(still, points, 3, 1)[0][0]  # the same person, moved and turned a little
    crops = []
    for image in (still, moved, still_frame(pictures["grace_hopper"], 200)[0]):
        crop, crop_points, _ = crop_face(image, detector.detect(image), settings)
        crops.append((crop, crop_points))
    identity = DlibIdentity()
    same = csim(identity, crops[0][0], crops[1][0], crops[0][1])
    other = csim(identity, crops[0][0], crops[2][0], crops[0][1])
    print(f"CSIM (dlib cosine): same person {same:.3f}, astronaut vs Grace Hopper {other:.3f}")
    assert same > other and same > 0.9


def test_akd_is_zero_for_equal_landmarks_and_known_for_a_known_shift():
    points = make_detector("dlib").detect(still_frame(face_pictures()["astronaut"], 160)[0])
    assert akd(points, points) == 0
    shifted = points + np.array([3.0, 4.0])
    assert akd(points, shifted) == pytest.approx(5.0 / interocular(points))


def test_lpips_is_zero_for_identical_images_and_unavailable_without_weights(photo, tmp_path):
    lpips = Lpips(None, random_backbone=True)
    image = to_tensor(photo)
    assert lpips(image, image).item() == pytest.approx(0.0, abs=1e-6)
    assert lpips(image, 1 - image).item() > 0
    assert isinstance(Lpips.load(None), Unavailable)
    assert "no such file" in Lpips.load(str(tmp_path / "alexnet.pth")).reason
    assert "eval.fid_inception_weights" in Fid.load(None).reason


def test_arcface_csim_runs_a_given_onnx_model_and_names_what_is_missing(tmp_path):
    """The ArcFace path with a stand-in ONNX network of ArcFace's shape (112 px in, vector out)."""
    stand_in = torch.nn.Sequential(  # 112 px -> 8 x 27 x 27 -> 16
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.Flatten(), torch.nn.Linear(8 * 27 * 27, 16)
    )
    path = tmp_path / "arcface.onnx"
    torch.onnx.export(stand_in, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False)
    identity = ArcFaceIdentity.load(str(path))
    assert isinstance(identity, ArcFaceIdentity)
    detector = make_detector("dlib")
    settings = CropSettings(128, 0.52, 0.28)
    crops = []
    for name in ("astronaut", "grace_hopper"):
        image = still_frame(face_pictures()[name], 200)[0]
        crops.append(crop_face(image, detector.detect(image), settings)[:2])
    (astronaut, points), (hopper, _) = crops
    assert identity(astronaut, points).shape == (16,)
    assert csim(identity, astronaut, astronaut, points) == pytest.approx(1.0, abs=1e-5)
    assert csim(identity, astronaut, hopper, points) < 0.999
    assert "eval.arcface_weights" in ArcFaceIdentity.load(None).reason
    assert "no such file" in ArcFaceIdentity.load(str(tmp_path / "missing.onnx")).reason
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    assert "does not load" in ArcFaceIdentity.load(str(tmp_path / "broken.onnx")).reason


class _GpuBuildSession:
    """onnxruntime-gpu's InferenceSession as ArcFace meets it: providers must be named."""

    def __init__(self, path: str, providers: list | None = None) -> None:
        if providers is None:
            raise ValueError(
                "This ORT build has ['CUDAExecutionProvider', 'CPUExecutionProvider'] enabled. "
                "Since ORT 1.9, you are required to explicitly set the providers parameter"
            )
        if providers[0] == "broken":  # a test's stand-in for a provider that fails to start
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        self.providers = providers

    def get_inputs(self) -> list:
        return [types.SimpleNamespace(name="input.1")]


def test_arcface_names_its_providers_cuda_first_on_a_gpu_and_the_cpu_always(tmp_path, monkeypatch):
    import onnxruntime

    import metrics.identity as identity

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(onnxruntime, "InferenceSession", _GpuBuildSession)
    offered = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: offered)
    path = tmp_path / "arcface.onnx"
    path.write_bytes(b"a model")
    on_cpu = ArcFaceIdentity.load(str(path))  # the evaluation's device: the CPU by default
    assert isinstance(on_cpu, ArcFaceIdentity), on_cpu  # not n/a on onnxruntime-gpu
    assert on_cpu.session.providers == ["CPUExecutionProvider"]
    for device, index in (("cuda:1", 1), ("auto", 0)):
        providers = ArcFaceIdentity.load(str(path), device).session.providers
        assert providers == [
            ("CUDAExecutionProvider", {"device_id": index}),
            "CPUExecutionProvider",
        ]
    offered[:] = ["CPUExecutionProvider"]  # the CPU-only onnxruntime on a GPU machine
    assert ArcFaceIdentity.load(str(path), "cuda").session.providers == ["CPUExecutionProvider"]
    # A provider that fails to start: the metric is n/a, and says onnxruntime's reason.
    monkeypatch.setattr(identity, "onnx_providers", lambda device, available: ["broken"])
    reason = ArcFaceIdentity.load(str(path), "cuda").reason
    assert "RuntimeError: CUDA failure 100: no CUDA-capable device" in reason
