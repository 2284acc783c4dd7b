"""The fast avatar: a student distilled from a person model, its poses, its file, its cost."""

from __future__ import annotations

import json

import filelock
import numpy as np
import onnxruntime
import pytest
import torch
from synthetic_videos import built_store, still_frame
from torch.utils.flop_counter import FlopCounterMode

from dataset.face import face_radius
from dataset.synthetic import face_pictures, moving_clip, write_video
from embedder_inference import main as embed_main
from fine_tuning_training import main as finetune_main
from live.export import export_person
from live.render import make_renderer
from models.person_model import load_person_model
from network import Generator
from network.student import Student
from params.config import PARAMS_DIR, DistillConfig, load_config, with_run_settings
from person.distill import Distiller, distill
from person.distill import main as distill_main
from person.poses import augment, split_poses
from runtime.precision import Precision
from training.loop import train
from webcam_inference import main as drive_main

pytestmark = pytest.mark.filterwarnings("ignore:loss.random_perceptual_networks")
TINY = [  # a small student and a short run: seconds on a CPU
    "distill.widths=[8,16,32]",
    "distill.blocks=1",
    "distill.poses=48",
    "distill.steps=12",
    "distill.batch_size=4",
    "distill.perceptual_crop=32",
    "distill.log_every=4",
    "distill.sample_every=6",
    "distill.checkpoint_every=4",
    "loss.random_perceptual_networks=true",
]


def settings(*extra: str) -> list[str]:
    return [arg for item in [*TINY, *extra] for arg in ("--set", item)]


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """A tiny person model of the astronaut (8 frames), and a Grace Hopper video to drive."""
    built = built_store(tmp_path_factory)
    folder = tmp_path_factory.mktemp("distill")
    config = load_config(PARAMS_DIR / "tiny.yaml", [f"data.store={built.store}", "train.steps=2"])
    meta = train(config, folder / "run", progress_bar=False)
    pictures = face_pictures()
    still, points = still_frame(pictures["astronaut"])
    write_video(folder / "astronaut.mp4", moving_clip(still, points, 0, 12)[0])
    path = folder / "astronaut.pt"
    embed = ["--model", str(meta), "--out", str(path), str(folder / "astronaut.mp4")]
    assert embed_main([*embed, "--set", "person.frames=8"]) == 0
    hopper, hopper_points = still_frame(pictures["grace_hopper"])
    write_video(folder / "driver.mp4", moving_clip(hopper, hopper_points, 0, 16)[0])
    return path, folder / "driver.mp4", meta


def flops(network, *inputs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(*inputs)
    return counter.get_total_flops()


def test_the_default_student_costs_under_a_tenth_of_the_paper_generator_at_256_px():
    config = load_config(PARAMS_DIR / "default.yaml")
    tune = config.distill
    student = Student.for_size(256, tune.widths, tune.blocks, "tanh").eval()
    picture = torch.rand(1, 3, 256, 256) * 2 - 1
    teacher = Generator(config.model).eval()
    embedding = torch.randn(1, config.model.embedding_dim)
    ratio = flops(student, picture) / flops(teacher, picture, embedding)
    print(f"student / teacher FLOPs at 256 px: {ratio:.4f}")
    assert ratio <= 0.1
    out = student(picture)
    assert out.shape == (1, 3, 256, 256) and out.abs().max() <= 1


def test_poses_open_the_mouth_close_the_eyes_and_keep_the_face_shape():
    points = still_frame(face_pictures()["astronaut"])[1]
    tune = DistillConfig(max_rotation=0.0, max_scale=0.0, max_shift=0.0)
    rng = np.random.default_rng(0)
    varied = np.stack([augment(points, rng, tune) for _ in range(200)])
    mouth = np.linalg.norm(varied[:, 66] - varied[:, 62], axis=1)  # inner lips apart
    eye = np.linalg.norm(varied[:, 37] - varied[:, 41], axis=1)  # an eye's lids apart
    before_mouth, before_eye = (
        np.linalg.norm(points[66] - points[62]),
        np.linalg.norm(points[37] - points[41]),
    )
    radius = face_radius(points)
    assert mouth.max() > before_mouth + 0.25 * radius  # wide open in some
    assert eye.min() < 0.1 * before_eye and eye.max() > 1.2 * before_eye  # shut and wide
    # Without expressions only the head moves: the face keeps its shape up to the similarity.
    moving = DistillConfig(max_rotation=20.0, max_scale=0.1, max_shift=0.2)
    for _ in range(20):
        moved = augment(points, rng, moving, expressions=False)
        scale = face_radius(moved) / radius
        assert 0.89 < scale < 1.11
        apart = np.linalg.norm(moved[66] - moved[62]), np.linalg.norm(moved[37] - moved[41])
        assert apart == pytest.approx((before_mouth * scale, before_eye * scale), rel=1e-3)


def test_driver_motion_is_retargeted_and_its_last_frames_are_never_trained_on():
    points = still_frame(face_pictures()["astronaut"])[1]
    own = np.stack([points + i for i in range(4)]).astype(np.float32)  # 4 frames, moved
    wide = np.stack([still_frame(face_pictures()["grace_hopper"])[1] * 1.5] * 20)
    wide[:, 66, 1] += np.linspace(0, 30, 20)  # the driver opens the mouth over the clip
    tune = DistillConfig(poses=400, driver_share=1.0, holdout=0.25)
    train_poses, held = split_poses(own, [wide], tune, np.random.default_rng(0))
    driven = [p for p, s in zip(held.landmarks, held.sources, strict=True) if s == "driver"]
    assert len(driven) == 5 and held.own == [3]
    # The person's shape (radius), not the driver's 1.5x wider face; the driver's mouth
    # motion (0..30 px on their face) scaled to the person's face size.
    scale = face_radius(own.mean(axis=0)) / face_radius(wide.mean(axis=0))
    neutral_mouth = own.mean(axis=0)[66, 1]
    for pose, opened in zip(driven, np.linspace(0, 30, 20)[-5:], strict=True):
        assert face_radius(pose) == pytest.approx(face_radius(own[0]), rel=1e-3)
        expected = neutral_mouth + (opened - np.linspace(0, 30, 20).mean()) * scale
        assert pose[66, 1] == pytest.approx(expected, abs=1e-3)
    trained = train_poses.landmarks[[s == "driver" for s in train_poses.sources]]
    held_mouths = {round(float(p[66, 1] - p[57, 1]), 3) for p in driven}
    trained_mouths = {round(float(p[66, 1] - p[57, 1]), 3) for p in trained}
    assert trained_mouths and not held_mouths & trained_mouths
    assert not any(np.allclose(own[3], p) for p in train_poses.landmarks)


def test_distilling_makes_a_person_model_that_drives_exports_and_evaluates(person, tmp_path):
    path, driver, meta = person
    out = tmp_path / "fast.pt"
    command = [str(path), "--out", str(out), "--drivers", str(driver), "--no-progress"]
    assert distill_main([*command, *settings()]) == 0
    student = load_person_model(out)
    teacher = load_person_model(path)
    assert student.kind == "distilled" and student.teacher == teacher.identity
    assert student.frames == teacher.frames and isinstance(student.generator, Student)
    for name in ("fast_samples.png", "fast_loss.png", "fast_report.json"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "fast.pt.work").exists()
    report = json.loads((tmp_path / "fast_report.json").read_text(encoding="utf-8"))
    assert {"student_vs_teacher/driver", "student_vs_teacher/own"} <= set(report)
    assert "ssim_to_real/student" in report and report["steps"] == 12
    # Driving: the same command as for any person model.
    video = tmp_path / "driven.mp4"
    drive = ["--model", str(out), "--source", str(driver), "--output", str(video)]
    assert drive_main([*drive, "--no-window"]) == 0 and video.stat().st_size > 0
    # Export: onnxruntime gives the student's frames.
    onnx_path = export_person(student, tmp_path / "fast.onnx", "onnx")
    picture = torch.rand(2, 3, 64, 64) * 2 - 1
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {"landmarks": picture.numpy()})
    np.testing.assert_allclose(exported, student.generate(picture).numpy(), atol=1e-4)
    # bf16 weights and torch.compile: the renderers of live driving take it as it is.
    picture = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    frames = {
        name: make_renderer(student, "torch", torch.device("cpu"), precision, compiled)(picture)
        for name, precision, compiled in (
            ("fp32", "fp32", False),
            ("bf16", "bf16", False),
            ("compiled", "fp32", True),
        )
    }
    for name in ("bf16", "compiled"):
        difference = np.abs(frames[name].astype(int) - frames["fp32"].astype(int))
        assert difference.mean() < 2.0, name  # 8-bit levels
    # Neither distilled again nor fine-tuned: both name the teacher as the way.
    assert distill_main([str(out), "--out", str(tmp_path / "again.pt"), *settings()]) == 2
    tune = ["--model", str(meta), "--person", str(out), "--out", str(tmp_path / "t.pt")]
    assert finetune_main([*tune, "--set", "loss.random_perceptual_networks=true"]) == 2


def _distil(person, out, steps: int) -> dict:
    """distill() on the module's person and driver for a number of steps: the report."""
    path, driver, _ = person
    teacher = load_person_model(path)
    config = with_run_settings(teacher.config, None, [*TINY, f"distill.steps={steps}"])
    precision = Precision("fp32", torch.device("cpu"))
    return distill(teacher, config, out, precision, [driver], progress=False)[1]


def test_the_student_learns_the_teachers_frames_on_poses_it_never_saw(person, tmp_path):
    early, trained = (
        _distil(person, tmp_path / "early.pt", 2),
        _distil(person, tmp_path / "trained.pt", 100),
    )
    for source in ("driver", "own"):
        before, after = (
            early[f"student_vs_teacher/{source}"],
            trained[f"student_vs_teacher/{source}"],
        )
        print(source, before, after)
        assert after["psnr"] > before["psnr"] + 4 and after["ssim"] > before["ssim"] + 0.15
    print(trained)


def test_a_stopped_distillation_resumes_exactly(person, tmp_path, monkeypatch, capsys):
    path, driver, _ = person
    command = [str(path), "--drivers", str(driver), "--no-progress", *settings()]
    assert distill_main([*command, "--out", str(tmp_path / "straight.pt")]) == 0
    original, calls = Distiller.step, []

    def stop_in_the_seventh(self, step, data):
        calls.append(1)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return original(self, step, data)

    resumed = [*command, "--out", str(tmp_path / "resumed.pt")]
    with monkeypatch.context() as patch:
        patch.setattr(Distiller, "step", stop_in_the_seventh)
        assert distill_main(resumed) == 130
    assert distill_main(resumed) == 2  # not silently restarted
    assert "--resume" in capsys.readouterr().err
    other = [*resumed, "--set", "distill.lr=1e-3", "--resume"]
    assert distill_main(other) == 2  # other settings: refused, not mixed
    assert "made from another settings" in capsys.readouterr().err
    assert distill_main([*resumed, "--resume"]) == 0
    straight, again = (load_person_model(tmp_path / n) for n in ("straight.pt", "resumed.pt"))
    for name, value in straight.generator.state_dict().items():
        assert torch.equal(value, again.generator.state_dict()[name]), name


def test_bad_inputs_are_messages(person, tmp_path, capsys):
    path, _, _ = person
    out = tmp_path / "fast.pt"
    (tmp_path / "notes.txt").write_text("not a video", encoding="utf-8")
    assert (
        distill_main(
            [str(path), "--out", str(out), "--drivers", str(tmp_path / "notes.txt"), *settings()]
        )
        == 2
    )
    assert "not a store, a video" in capsys.readouterr().err and not out.exists()
    # No VGG19 file and no permission for a random one: the setting to give is named.
    no_weights = [str(path), "--out", str(out), "--set", "loss.random_perceptual_networks=false"]
    assert distill_main(no_weights) == 2
    assert "loss.vgg19_weights" in capsys.readouterr().err and not out.exists()
    # A resume started twice: the second is refused instead of writing the same checkpoint.
    with filelock.FileLock(tmp_path / "fast.pt.work" / ".lock"):
        assert distill_main([str(path), "--out", str(out), "--resume", *settings()]) == 2
    assert "in use by another distillation" in capsys.readouterr().err
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        distill_main([str(path), "--out", str(out), *settings()])
    assert out.read_bytes() == b"keep me"
