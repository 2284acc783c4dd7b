"""The README's commands stay true: a docs check that fails when a command goes stale.

The first two commands are the demo (run, shortened, by tests/test_examples.py) and the test
command (run by .ci/run). Every other `python` command in the shell blocks of the README and
of docs/TRAINING_CPU.md names a script or module that exists, each `--flag` it uses is one its
`--help` lists, every `--set key=value` names a config field, and every file it mentions
under params/ exists.
"""

from __future__ import annotations

import importlib
import itertools
import re
import shlex
from pathlib import Path

import pytest

from params.config import ConfigError, apply_override, load_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_WITH_COMMANDS = (README, ROOT / "docs" / "TRAINING_CPU.md")

DEMO = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
    ".venv/bin/python -m examples.demo --overwrite"
)
TESTS = (
    "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && "
    ".venv/bin/python -m pytest -q"
)


def shell_blocks(text: str) -> list[str]:
    """The README's ```bash blocks, with backslash continuations joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [block.replace("\\\n", " ") for block in blocks]


def commands(block: str) -> list[list[str]]:
    """The commands of a block: one per line and per `&&`, comments dropped."""
    found = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in line.split("&&"):
            found.append(shlex.split(part.replace("$", "")))
    return found


def python_target(words: list[str]) -> tuple[str, list[str]] | None:
    """(module name, arguments) of a `python X.py ...`, `python -m X ...` or torchrun command."""
    program = Path(words[0]).name
    if program.startswith("python") and len(words) > 1:
        if words[1] == "-m":
            return words[2], words[3:]
        if words[1].endswith(".py"):
            return words[1][: -len(".py")].replace("/", "."), words[2:]
    if program == "torchrun":
        script = next(index for index, word in enumerate(words) if word.endswith(".py"))
        return words[script][: -len(".py")].replace("/", "."), words[script + 1 :]
    return None


def readme_python_commands() -> list[tuple[str, list[str]]]:
    found = []
    for block in (
        block
        for doc in DOCS_WITH_COMMANDS
        for block in shell_blocks(doc.read_text(encoding="utf-8"))
    ):
        for words in commands(block):
            target = python_target(words)
            if target is not None and target[0] not in {"venv", "pytest", "pip"}:
                found.append(target)
    return found


def test_the_first_two_commands_are_the_demo_and_the_tests():
    blocks = shell_blocks(README.read_text(encoding="utf-8"))
    assert blocks[0].strip() == DEMO
    assert blocks[1].strip() == TESTS
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/python -m pytest -q" in ci, "CI must run the README's test command"
    assert "from examples.demo import main" in (ROOT / "tests" / "test_examples.py").read_text(
        encoding="utf-8"
    )


def test_the_windows_commands_are_the_same_two():
    """PowerShell's pair (Windows PowerShell 5 has no &&; the venv's programs are in
    Scripts\\) does what the POSIX pair does."""
    (block,) = re.findall(r"```powershell\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    posix = [
        line.replace("py -m venv", "python3 -m venv")
        .replace(".venv\\Scripts\\", ".venv/bin/")
        .replace("; ", " && ")
        for line in block.strip().splitlines()
    ]
    assert posix == [DEMO, TESTS]


def test_the_readme_has_python_commands_to_check():
    targets = {name for name, _ in readme_python_commands()}
    expected = {"train", "embedder_inference", "fine_tuning_training", "webcam_inference"}
    assert expected | {"evaluate", "dataset.preprocess", "live.export"} <= targets


def usage_text(module_name: str, capsys) -> str:
    """The usage lines of a command's --help: every option it takes, and nothing else."""
    module = importlib.import_module(module_name)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out.split("\n\n", 1)[0]


@pytest.mark.parametrize("name", sorted({name for name, _ in readme_python_commands()}))
def test_every_readme_command_exists_and_takes_its_flags(name, capsys):
    assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), f"{name}: no such script"
    text = usage_text(name, capsys)
    for module, arguments in readme_python_commands():
        if module != name:
            continue
        for word in arguments:
            flag = word.split("=", 1)[0]
            if flag.startswith("--"):
                listed = re.search(re.escape(flag) + r"(?![\w-])", text)
                assert listed, f"README: `{name} {flag}` is not an option of {name}"
        for previous, word in itertools.pairwise(arguments):
            if previous == "--set":
                try:
                    apply_override(load_config(), word)
                except ConfigError as error:
                    pytest.fail(f"README: `{name} --set {word}`: {error}")
            if word.startswith("params/"):
                assert (ROOT / word).is_file(), f"README {name}: no file {word}"
