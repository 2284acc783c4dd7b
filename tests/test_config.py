import argparse

import pytest
import torch

from params.config import (
    PARAMS_DIR,
    ConfigError,
    add_config_arguments,
    config_from_args,
    load_config,
    save_config,
)
from utils.device import resolve_device


def test_default_yaml_is_the_paper_configuration():
    config = load_config(PARAMS_DIR / "default.yaml")
    assert config.model.image_size == 256
    assert config.model.embedding_dim == 512
    assert config.loss.vgg19_weight == pytest.approx(0.15)
    assert config.loss.vggface_weight == pytest.approx(0.025)
    assert config.loss.feature_matching_weight == 10 and config.loss.match_weight == 10
    assert config.optim.lr_generator == pytest.approx(5e-5)
    assert config.optim.lr_discriminator == pytest.approx(2e-4)
    assert config.data.k_shot == 8
    assert not config.loss.random_perceptual_networks


def test_overrides_are_typed_and_applied_after_the_file():
    config = load_config(
        PARAMS_DIR / "tiny.yaml",
        [
            "model.image_size=128",
            "loss.vgg19_weight=1e-2",
            "loss.vgg19_weights=/w/vgg19.pth",
            "loss.random_perceptual_networks=false",
        ],
    )
    assert config.model.image_size == 128
    assert config.loss.vgg19_weight == pytest.approx(1e-2)
    assert config.loss.vgg19_weights == "/w/vgg19.pth"
    assert config.model.base_channels == 8  # from tiny.yaml, untouched


def test_unknown_key_is_an_error_that_names_it(tmp_path):
    with pytest.raises(ConfigError, match="model.imagesize"):
        load_config(None, ["model.imagesize=64"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  vgg_weight: 1.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="loss.vgg_weight"):
        load_config(bad)


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="model.image_size"):
        load_config(None, ["model.image_size=big"])
    with pytest.raises(ConfigError, match="loss.vgg19_layer_weights"):
        load_config(None, ["loss.vgg19_layer_weights=3"])
    with pytest.raises(ConfigError, match="form"):
        load_config(None, ["model.image_size"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such/file.yaml")


def test_cli_arguments_and_save_round_trip(tmp_path):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        ["--config", str(PARAMS_DIR / "tiny.yaml"), "--set", "optim.betas=[0.5, 0.9]"]
    )
    config = config_from_args(args)
    assert config.optim.betas == [0.5, 0.9]
    saved = tmp_path / "run.yaml"
    save_config(config, saved)
    assert load_config(saved) == config


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:0")


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("train.checkpoint_every=0", ">= 1"),  # before: a division by zero after step 1
        ("model.image_size=100", "a power of two"),  # before: fails only in training
        ("model.image_size=-64", "a power of two"),  # before: a store of 1x1 crops, "done"
        ("optim.lr_generator=-0.5", ">= 0"),
        ("optim.lr_generator=inf", "finite"),  # before: "done" with a NaN meta-model
        ("data.jpeg_quality=1000", "between 1 and 100"),
        ("train.steps=0", ">= 1"),  # before: a folder that blocked a rerun
        ("eval.holdout_frames=0", ">= 1"),  # before: "no video to evaluate"
        ("data.face_width=1.5", "strictly between 0 and 1"),
        ("train.precision=fp8", "one of"),
        ("device=gpu", "'cuda:N'"),
    ],
)
def test_values_out_of_range_are_refused_with_key_value_and_range(override, allowed):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as raised:
        load_config(PARAMS_DIR / "tiny.yaml", [override])
    message = str(raised.value)
    assert message.startswith(f"{key}: ") and value in message and allowed in message


def test_every_shipped_config_is_in_range():
    for path in sorted(PARAMS_DIR.glob("*.yaml")):
        load_config(path)  # raises if not


def test_relations_between_fields_are_checked():
    with pytest.raises(ConfigError, match="finetune.epochs=0, finetune.steps=0"):
        load_config(None, ["finetune.epochs=0"])


def test_a_yaml_syntax_error_names_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  steps: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.yaml is not a YAML config file"):
        load_config(broken)
    binary = tmp_path / "clip.mp4"
    binary.write_bytes(bytes(range(256)) * 4)  # before: a UnicodeDecodeError traceback
    with pytest.raises(ConfigError, match="clip.mp4 is not a YAML config file"):
        load_config(binary)


def test_a_set_value_that_is_not_yaml_is_one_line_naming_it(tmp_path, capsys):
    """Before: a raw yaml ParserError traceback, while the same mistake in a --config file
    was a message."""
    from train import main as train_main

    with pytest.raises(ConfigError, match=r"^--set train.steps=\[1,: the value is not YAML"):
        load_config(PARAMS_DIR / "tiny.yaml", ["train.steps=[1,"])
    command = ["--config", "params/tiny.yaml", "--out", str(tmp_path / "run")]
    assert train_main([*command, "--set", "train.steps=[1,"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: --set train.steps=[1,: the value is not YAML (")
    assert said.count("\n") == 1 and not (tmp_path / "run").exists()


def test_preprocessing_refuses_a_crop_size_out_of_range(tmp_path, capsys):
    from dataset.preprocess import main as preprocess_main

    (tmp_path / "videos").mkdir()
    store = tmp_path / "store"
    assert (
        preprocess_main(["--src", str(tmp_path / "videos"), "--dst", str(store), "--size", "0"])
        == 2
    )
    assert "model.image_size: 0 is out of range" in capsys.readouterr().err
    assert not store.exists()


def test_a_config_file_for_a_person_script_gives_its_run_settings_and_no_silent_rest(tmp_path):
    """Before: only its person/finetune/train/eval sections were taken; its weight paths and
    tracking settings were dropped and model keys ignored, all without a word."""
    from params.config import with_run_settings

    model = load_config(PARAMS_DIR / "tiny.yaml")
    settings = tmp_path / "run.yaml"
    settings.write_text(
        "finetune: {steps: 7}\nloss: {random_perceptual_networks: false, "
        "vgg19_weights: /w/vgg19.pth}\ndata: {redetect_every: 3}\n",
        encoding="utf-8",
    )
    config = with_run_settings(model, settings, [])
    assert config.finetune.steps == 7 and config.data.redetect_every == 3
    assert config.loss.vgg19_weights == "/w/vgg19.pth"
    settings.write_text("model: {image_size: 256}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="model.image_size=256 differs from the model's 64"):
        with_run_settings(model, settings, [])
    settings.write_text("data: {batch_size: 3}\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="data.batch_size ignored"):
        with_run_settings(model, settings, [])


def test_weight_files_with_random_perceptual_networks_are_refused():
    """Before: the path was never read and the run used random networks, exit 0."""
    with pytest.raises(ConfigError, match="random perceptual networks ignore weight files"):
        load_config(PARAMS_DIR / "tiny.yaml", ["loss.vgg19_weights=/w/vgg19.pth"])


def test_fine_tuning_batches_are_at_most_the_persons_frames():
    """finetune.batch_size=100000 with T = 1 was killed at 23 GB."""
    from person.finetune import batch_size, total_steps

    config = load_config(None, ["finetune.batch_size=100000", "finetune.epochs=4"])
    assert batch_size(config, 1) == 1 and total_steps(config, 1) == 4
    assert batch_size(config, 32) == 32
