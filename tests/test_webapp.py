"""The app's parts that need no browser: each tab's folder and free names, and long work as
the command line's own process, stopped (its step saved) and resumed from the page."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from random_models import tiny_meta_model

from models.meta_model import load_meta_model
from models.person_model import load_person_model
from person.embed import embed_person
from webapp.jobs import STOPPED, Job, plain_lines, watch
from webapp.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def test_each_browser_tab_has_its_own_folder_and_nothing_is_replaced(tmp_path):
    first, second = Workspace(tmp_path, "abc123"), Workspace(tmp_path, "def456")
    assert first.folder != second.folder
    assert Workspace(tmp_path, "../../etc").folder.parent == tmp_path  # no way out of the root
    taken = first.free_path("person", ".pt")
    assert taken == first.folder / "person.pt"
    taken.write_bytes(b"made")
    assert first.free_path("person", ".pt") == first.folder / "person-2.pt"
    (first.folder / "person-2.pt.work").mkdir()  # a stopped job's output name is taken too
    assert first.free_path("person", ".pt") == first.folder / "person-3.pt"
    assert second.free_path("person", ".pt") == second.folder / "person.pt"


def test_a_finished_job_says_its_result_without_warning_boilerplate():
    output = (
        "/x/finetune.py:120: UserWarning: the VGG networks are RANDOM\n"
        "  ContentLoss(config.loss)\n"
        "the VGG networks are RANDOM\n"
        "wrote me_tuned.pt (fine-tuned, 8 frames)\n"
    )
    assert plain_lines(output) == [
        "the VGG networks are RANDOM",
        "wrote me_tuned.pt (fine-tuned, 8 frames)",
    ]


class WindowsPopen(subprocess.Popen):
    """A job started as the app starts it on Windows (in its own process group), to which no
    signal may be sent: on Windows os.kill and terminate() end it at once, unsaved."""

    def __init__(self, *args, creationflags: int = 0, **kwargs):
        assert creationflags == 0x08000200 and "start_new_session" not in kwargs
        super().__init__(*args, start_new_session=True, **kwargs)  # Linux's equivalent

    def send_signal(self, sig):
        raise AssertionError(f"signal {sig} sent to a job: on Windows it dies unsaved")


@pytest.mark.filterwarnings("ignore:loss.random_perceptual_networks")
def test_stop_keeps_the_step_and_resume_finishes_the_fine_tuning(tmp_path, monkeypatch):
    """The page's Stop (the job's stop file, which fine_tuning_training.py takes as Ctrl-C)
    saves the finished step and says so, as the app on Windows does it; Resume (--resume)
    continues from it to the person model."""
    meta_path = tiny_meta_model(tmp_path / "meta.pt", ["loss.random_perceptual_networks=true"])
    meta = load_meta_model(meta_path)
    person, _ = embed_person(meta, [ROOT / "examples" / "faces" / "astronaut.jpg"], meta.config)
    person.save(tmp_path / "person.pt")
    out, steps = tmp_path / "person_tuned.pt", 60
    arguments = [
        *("fine_tuning_training.py", "--model", str(meta_path), "--person"),
        *(str(tmp_path / "person.pt"), "--out", str(out), "--no-progress"),
        *("--set", f"finetune.steps={steps}", "--set", "finetune.log_every=1"),
    ]
    monkeypatch.setattr(subprocess, "Popen", WindowsPopen)
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        job = Job(arguments, out, steps)
    deadline = time.monotonic() + 120
    while job.progress().step < 2:
        assert job.running(), job.log.read_text(encoding="utf-8")
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        job.stop()
    *_, (bar, _, _, result, said) = watch(job, "fine-tuning")
    assert job.status == STOPPED and result is None
    assert "stopped at step" in said and "Resume" in said
    assert (job.work / "finetune.pt").exists() and not out.exists()
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        resumed = Job([*arguments, "--resume"], out, steps)
    *_, (bar, _, _, result, said) = watch(resumed, "fine-tuning")
    assert resumed.status == 0, resumed.log.read_text(encoding="utf-8")
    assert result == str(out) and f"step {steps} of {steps}" in bar
    assert load_person_model(out).kind == "fine-tuned"
