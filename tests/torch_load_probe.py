"""What a command's environment holds when it starts loading torch (settings that torch and
OpenMP read once, at load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = (
    "import os, sys\n"
    "class Probe:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch':\n"
    "            print(os.environ.get(sys.argv[2]), flush=True)\n"
    "            os._exit(0)\n"
    "sys.meta_path.insert(0, Probe())\n"
    "__import__(sys.argv[1])\n"
)


def variable_at_torch_load(module: str, variable: str) -> str:
    """The variable's value ('None' when unset) as module's import reaches torch, the
    variable removed from the environment it starts with."""
    env = {k: v for k, v in os.environ.items() if k != variable}
    probing = [sys.executable, "-c", PROBE, module, variable]
    result = subprocess.run(probing, cwd=ROOT, env=env, capture_output=True, encoding="utf-8")
    assert result.stdout, result.stderr[-2000:]
    return result.stdout.strip()
