"""Long work (fine-tuning, distillation) as the same command a user types, in its own process.

The page stays responsive whatever the job does; Stop writes the job's stop file, which the
commands treat as Ctrl-C on every OS (utils/signals.py; a signal would kill a Windows job at
once): the finished step is saved and --resume continues from it. Jobs run in their own process
group, so the app's own Ctrl-C reaches them once, as that stop request, not also as their own
Ctrl-C. Progress, sample grids and the loss plot are read from the job's work folder
(runtime/runlog.py), and a failure is the command's own 'error: ...' line.
"""

from __future__ import annotations

import contextlib
import html
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.runlog import read_metrics
from utils.folders import is_os_file
from utils.signals import STOP_FILE_VARIABLE, new_process_group

ROOT = Path(__file__).resolve().parents[1]
WORK_SUFFIX = ".work"  # person/finetune.py and person/distill.py: OUT.work/ beside OUT
STOPPED = 130  # utils/signals.STOPPED: the job saved its step and stopped on request
POLL_SECONDS = 1.0


@dataclass
class Progress:
    step: int  # steps finished (0 while the job prepares)
    total: int
    sample: Path | None  # the newest sample grid of the work folder
    loss_plot: Path | None
    scalars: dict[str, float]  # the newest logged record


class Job:
    """One command (python ARGS...) run in ROOT, writing out; its output goes to out's .log."""

    def __init__(self, arguments: list[str], out: Path, total: int) -> None:
        self.out, self.total = out, total
        self.work = out.with_name(out.name + WORK_SUFFIX)
        self.log = out.with_name(out.name + ".log")
        self.stop_file = out.with_name(out.name + ".stop")
        out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.stop_file.unlink()  # an earlier job's request: not this one's
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        environment[STOP_FILE_VARIABLE] = str(self.stop_file)
        with self.log.open("w", encoding="utf-8") as handle:
            self.process = subprocess.Popen(
                [sys.executable, *arguments],
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=environment,
                **new_process_group(),
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ask the job to stop: it saves its finished step and exits (status 130)."""
        if self.running():
            self.stop_file.touch()

    def wait(self, seconds: float) -> bool:
        """Wait up to seconds; True when the job has ended."""
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        with contextlib.suppress(FileNotFoundError):
            self.stop_file.unlink()  # asked for and answered
        return True

    @property
    def status(self) -> int | None:
        return self.process.poll()

    def error(self) -> str:
        """The command's 'error: ...' line(s), or the end of its output when it has none."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        lines = text.splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        return "\n".join(errors or lines[-5:]) or f"the job ended with status {self.status}"

    def progress(self) -> Progress:
        records = read_metrics(self.work) if self.work.is_dir() else []
        pictures = (self.work / "samples").glob("*.png") if self.work.is_dir() else []
        samples = sorted(p for p in pictures if not is_os_file(p))
        plot = self.work / "loss.png"
        latest = records[-1] if records else {}
        return Progress(
            int(latest.get("step", 0)),
            self.total,
            samples[-1] if samples else None,
            plot if plot.exists() else None,
            {k: v for k, v in latest.items() if k != "step"},
        )


class JobTable:
    """The running or last job of each (workspace folder, kind), shared by the page's handlers."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[Path, str], Job] = {}
        self._lock = threading.Lock()

    def get(self, folder: Path, kind: str) -> Job | None:
        with self._lock:
            return self._jobs.get((folder, kind))

    def put(self, folder: Path, kind: str, job: Job) -> None:
        with self._lock:
            self._jobs[(folder, kind)] = job

    def stop_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()


def plain_lines(text: str) -> list[str]:
    """A command's output as the page says it: a Python warning as its message only (not its
    file, line and source line), each line once."""
    lines, skip = [], False
    for line in text.strip().splitlines():
        if skip and line.startswith(" "):
            skip = False
            continue
        skip = "Warning: " in line
        line = line.split("Warning: ", 1)[-1]
        if line.strip() and line not in lines:
            lines.append(line)
    return lines


def progress_html(step: int, total: int, what: str, note: str = "") -> str:
    """A progress bar with 'WHAT: step S of T (P%) NOTE' under it."""
    share = 100 * step / max(total, 1)
    return (
        f"<div><progress value='{step}' max='{max(total, 1)}' style='width:100%'></progress>"
        f"<div class='job-progress'>{html.escape(what)}: step {step} of {total} "
        f"({share:.0f}%) {html.escape(note)}</div></div>"
    )


def watch(job: Job, what: str) -> Iterator[tuple[str, str | None, str | None, str | None, str]]:
    """While job runs, every POLL_SECONDS: (progress bar, newest sample grid, loss plot, None,
    status); at its end the same with the output file when it succeeded (its OUT_samples.png
    and OUT_loss.png, and the command's last lines as status), or the command's error."""
    while not job.wait(POLL_SECONDS):
        seen = job.progress()
        note = "preparing" if seen.step == 0 else ""
        yield (
            progress_html(seen.step, job.total, what, note),
            str(seen.sample) if seen.sample else None,
            str(seen.loss_plot) if seen.loss_plot else None,
            None,
            f"{what} ...",
        )
    samples = job.out.with_name(job.out.stem + "_samples.png")
    plot = job.out.with_name(job.out.stem + "_loss.png")
    if job.status == 0 and job.out.exists():
        said = plain_lines(job.log.read_text(encoding="utf-8", errors="replace"))[-6:]
        yield (
            progress_html(job.total, job.total, what, "done"),
            str(samples) if samples.exists() else None,
            str(plot) if plot.exists() else None,
            str(job.out),
            "\n\n".join(html.escape(line) for line in said),
        )
        return
    seen = job.progress()
    if job.status == STOPPED:
        text = f"stopped at step {seen.step}; **Resume** continues from the last saved step"
    else:
        text = html.escape(job.error()).replace("error:", "**error:**")
    yield (
        progress_html(seen.step, job.total, what, "stopped"),
        str(seen.sample) if seen.sample else None,
        str(seen.loss_plot) if seen.loss_plot else None,
        None,
        text,
    )
