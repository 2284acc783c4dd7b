import pytest
import torch

from params.config import PARAMS_DIR, Config, load_config


@pytest.fixture
def tiny_config() -> Config:
    torch.manual_seed(0)
    return load_config(PARAMS_DIR / "tiny.yaml")
