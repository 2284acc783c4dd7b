import pytest
import torch
import windows_files

from params.config import PARAMS_DIR, Config, load_config


@pytest.fixture
def tiny_config() -> Config:
    torch.manual_seed(0)
    return load_config(PARAMS_DIR / "tiny.yaml")


@pytest.fixture(autouse=True)
def windows_file_rules(monkeypatch):
    """Every test under Windows' rules for open files (tests/windows_files.py)."""
    windows_files.apply(monkeypatch)
