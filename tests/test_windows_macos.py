"""What a Windows or macOS user meets, each kind on Linux: POSIX-only modules, stop requests
without signals, jobs outside the app's process group, appends without O_NOFOLLOW, files held
open by another program while we replace or delete them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from windows_files import make_link, real_unlink

import utils.files
from utils.files import open_for_append, remove_folder, replace_file
from utils.signals import STOP_FILE_VARIABLE, new_process_group, stop_requests_as_ctrl_c

ROOT = Path(__file__).resolve().parents[1]
POSIX_ONLY = ("resource", "fcntl", "termios")


def test_every_module_and_test_loads_without_posix_only_modules():
    """Windows has no resource, fcntl or termios (before: bench/train_step.py imported
    resource, so collecting the tests stopped there)."""
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in [*ROOT.glob("*.py"), *ROOT.glob("*/*.py")]
        if path.parent.name != "tests" and path.stem != "__init__"
    )
    ours = sorted({name.split(".")[0] for name in modules})
    # Our code's imports of them fail as on Windows; libraries that import them only off
    # Windows (huggingface_hub's termios) are left alone.
    program = "\n".join(
        [
            "import builtins, importlib, sys, pytest",
            "real_import = builtins.__import__",
            "def windows_import(name, globals=None, locals=None, fromlist=(), level=0):",
            "    importer = (globals or {}).get('__name__', '').split('.')[0]",
            f"    mine = importer in {ours!r} or importer.startswith(('test_', 'conftest'))",
            f"    if name.split('.')[0] in {POSIX_ONLY!r} and mine:",
            "        raise ImportError(f'No module named {name!r} (on Windows)')",
            "    return real_import(name, globals, locals, fromlist, level)",
            "builtins.__import__ = windows_import",
            f"for name in {modules!r}:",
            "    importlib.import_module(name)",
            "sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider']))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_a_stop_file_acts_as_ctrl_c(tmp_path, monkeypatch):
    """The app's Stop on every OS: the file appearing raises Ctrl-C's KeyboardInterrupt in the
    main thread, where a signal would have killed a Windows job outright."""
    stop = tmp_path / "job.stop"
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(stop))
    with pytest.raises(KeyboardInterrupt), stop_requests_as_ctrl_c():
        threading.Timer(0.3, stop.touch).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.02)
    assert time.monotonic() < deadline


def test_a_stop_asked_for_while_the_command_starts_is_kept(tmp_path, monkeypatch):
    stop = tmp_path / "job.stop"
    stop.touch()  # Stop pressed while the job was still importing torch
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(stop))
    with pytest.raises(KeyboardInterrupt), stop_requests_as_ctrl_c():
        for _ in range(500):
            time.sleep(0.02)


def test_a_stop_file_stops_where_ctrl_c_is_ignored(tmp_path, monkeypatch):
    """A job of an app started in the background (`python app.py &`) inherits an ignored
    SIGINT: the request still stops it (before: the file was taken and nothing happened)."""
    stop = tmp_path / "job.stop"
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(stop))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt), stop_requests_as_ctrl_c():
            stop.touch()
            for _ in range(500):
                time.sleep(0.02)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_each_stop_request_is_delivered_the_second_as_a_second_ctrl_c(tmp_path, monkeypatch):
    """The first asks for a stop after the step; the second, as a second Ctrl-C, at once (on
    Windows nothing else can end a job that hangs)."""
    stop = tmp_path / "job.stop"
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(stop))
    taken = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: taken.append(signum))
    try:
        with stop_requests_as_ctrl_c():
            for count in (1, 2):
                stop.touch()
                deadline = time.monotonic() + 10
                while len(taken) < count and time.monotonic() < deadline:
                    time.sleep(0.02)
        assert len(taken) == 2 and not stop.exists()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_left_by_an_earlier_job_does_not_stop_the_next(tmp_path):
    """Stop pressed as a job ended leaves its file: the next job (Resume) must not take it."""
    from webapp.jobs import Job

    out = tmp_path / "person_tuned.pt"
    script = (
        "import time, sys\n"
        "from utils.signals import stop_requests_as_ctrl_c\n"
        "with stop_requests_as_ctrl_c():\n"
        "    time.sleep(1.5)\n"
        f"open({str(out)!r}, 'w').close()\n"
    )
    Job(["-c", "pass"], out, 1).stop_file.touch()  # an earlier job's request, never taken
    job = Job(["-c", script], out, 1)
    assert job.wait(60) and job.status == 0, job.log.read_text(encoding="utf-8")
    assert out.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be delivered on Windows")
def test_sigterm_still_acts_as_ctrl_c_on_posix():
    with pytest.raises(KeyboardInterrupt), stop_requests_as_ctrl_c():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def test_jobs_start_outside_the_apps_process_group(monkeypatch):
    """Ctrl-C in the app's terminal reaches only the app, which then asks each job to stop
    once (before: the job got SIGINT and then SIGTERM, and stopped unsaved)."""
    assert new_process_group() == {"start_new_session": True}
    monkeypatch.setattr(sys, "platform", "win32")
    # CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW: closing the app's console does not end it
    assert new_process_group() == {"creationflags": 0x08000200}


def test_appends_refuse_a_link_without_o_nofollow(tmp_path, monkeypatch):
    """Windows has no O_NOFOLLOW (before: the guard was silently off there)."""
    monkeypatch.delattr(os, "O_NOFOLLOW", raising=False)
    target, link = tmp_path / "elsewhere.txt", tmp_path / "skipped.log"
    target.write_text("", encoding="utf-8")
    make_link(link, target)
    with pytest.raises(OSError, match="symbolic link"):
        open_for_append(link)
    with open_for_append(tmp_path / "plain.log") as handle:
        handle.write("ünïcode\n")
    assert (tmp_path / "plain.log").read_text(encoding="utf-8") == "ünïcode\n"


def test_a_link_made_between_the_look_and_the_open_is_refused(tmp_path, monkeypatch):
    """Without O_NOFOLLOW the path is looked at again after the open."""
    monkeypatch.delattr(os, "O_NOFOLLOW", raising=False)
    target, log = tmp_path / "elsewhere.txt", tmp_path / "skipped.log"
    target.write_text("", encoding="utf-8")
    real_open = os.open

    def open_then_swapped(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        real_unlink(path)  # while open: what Windows refuses; this race is POSIX's
        make_link(Path(path), target)
        return fd

    monkeypatch.setattr(os, "open", open_then_swapped)
    with pytest.raises(OSError, match="symbolic link"):
        open_for_append(log)


def _hold(path: Path, seconds: float) -> threading.Thread:
    """Hold path open for seconds (what the page or a player does), in another thread."""
    opened = threading.Event()

    def hold():
        with open(path, "rb"):
            opened.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    opened.wait()
    return thread


@pytest.fixture
def windows_waits(monkeypatch):
    """utils.files as on Windows, where a rename waits out another program's brief hold."""
    monkeypatch.setattr(utils.files, "WAIT_FOR_HOLDS", True)


def test_a_file_held_open_briefly_is_replaced_once_let_go(tmp_path, windows_waits):
    """The page reads loss.png while the job writes the next one: under Windows' rules
    (tests/windows_files.py) the rename waits instead of failing the job."""
    target, new = tmp_path / "loss.png", tmp_path / "new.png"
    target.write_bytes(b"old")
    new.write_bytes(b"new")
    holder = _hold(target, 0.5)
    replace_file(new, target)
    holder.join()
    assert target.read_bytes() == b"new"


def test_a_file_held_open_for_long_is_named_in_the_error(tmp_path, monkeypatch, windows_waits):
    monkeypatch.setattr(utils.files, "WAIT_SECONDS", 0.3)
    target, new = tmp_path / "driven.mp4", tmp_path / "new.mp4"
    target.write_bytes(b"old")
    new.write_bytes(b"new")
    holder = _hold(target, 1.0)
    with pytest.raises(PermissionError, match="close it") as error:
        replace_file(new, target)
    holder.join()
    assert error.value.filename == str(target) and target.read_bytes() == b"old"


def test_a_work_folder_with_a_held_file_is_left_with_a_warning(
    tmp_path, monkeypatch, windows_waits
):
    monkeypatch.setattr(utils.files, "WAIT_SECONDS", 0.3)
    work = tmp_path / "me.pt.work"
    work.mkdir()
    (work / "loss.png").write_bytes(b"png")
    holder = _hold(work / "loss.png", 1.0)
    with pytest.warns(UserWarning, match="could not delete .*loss.png"):
        remove_folder(work)
    holder.join()
    remove_folder(work)
    assert not work.exists()


class _Frame(torch.nn.Module):
    """A generator stand-in with a pointwise tail, which inductor writes as C++ on a CPU."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.conv(x) * 1.5 + 0.1)


@pytest.fixture
def no_compiler():
    """Inductor's compiler lookup finds nothing, as on a Windows laptop without MSVC."""
    import torch._inductor.config as inductor

    # Not monkeypatch: its undo deletes the option from inductor's config module.
    with inductor.patch({"cpp.cxx": ("no-such-c++-compiler",), "freezing": inductor.freezing}):
        torch._dynamo.reset()
        yield
    torch._dynamo.reset()


def test_live_compile_without_a_compiler_drives_eagerly_after_one_warning(no_compiler, monkeypatch):
    """Before: a traceback at the first frame, which webcam_inference.py did not catch."""
    import live.render as render

    torch.manual_seed(0)
    network = _Frame()
    monkeypatch.setattr(render, "person_network", lambda person: network)
    model = types.SimpleNamespace(output_activation="tanh")
    person = types.SimpleNamespace(config=types.SimpleNamespace(model=model))
    compiled = render.TorchRenderer(person, torch.device("cpu"), "fp32", compile_model=True)
    eager = render.TorchRenderer(person, torch.device("cpu"), "fp32", compile_model=False)
    picture = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    with pytest.warns(UserWarning, match="torch.compile failed .*C\\+\\+ compiler") as said:
        frame = compiled(picture)
    assert len(said) == 1 and np.array_equal(frame, eager(picture))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(compiled(picture), eager(picture))


def test_train_compile_without_a_compiler_trains_eagerly_after_one_warning(
    no_compiler, tiny_config, monkeypatch
):
    from runtime.precision import Precision
    from training.distributed import Distributed
    from training.meta import MetaLearner

    monkeypatch.setattr(sys, "platform", "win32")  # the hint for the OS the user is on
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module, **options: compiled.append(1))
    tiny_config.train.compile = True
    run = Distributed(0, 1, 0, torch.device("cpu"))
    with pytest.warns(UserWarning) as said:
        MetaLearner(tiny_config, run, Precision("fp32", run.device))
    lines = [str(w.message) for w in said if "train.compile" in str(w.message)]
    assert len(lines) == 1 and "Visual Studio Build Tools" in lines[0] and not compiled


def test_a_name_outside_the_consoles_code_page_is_printed_not_fatal():
    """Windows writes piped output in cp1252; a name such as '顔.mp4' ended the command."""
    result = subprocess.run(
        [sys.executable, "-c", "import utils; print('wrote 顔.mp4')"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == b"wrote \\u9854.mp4"


def test_an_nvidia_laptop_with_a_torch_without_cuda_is_told(monkeypatch):
    """PyPI's Windows torch is CPU-only: before, an NVIDIA laptop ran on the CPU silently."""
    from utils.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr("shutil.which", lambda name: "C:/Windows/System32/nvidia-smi.exe")
    with pytest.warns(UserWarning, match="no CUDA .*pytorch.org"):
        assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr("shutil.which", lambda name: None)  # no NVIDIA GPU: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto").type == "cpu"


def test_an_output_video_open_in_a_player_keeps_the_new_one_beside_it(
    tmp_path, monkeypatch, windows_waits
):
    """Windows cannot replace a file that a player holds open: the driven video is not lost."""
    from live.sinks import SinkError, VideoFileSink

    monkeypatch.setattr(utils.files, "WAIT_SECONDS", 0.3)
    out = tmp_path / "driven.mp4"
    out.write_bytes(b"yesterday's video")
    sink = VideoFileSink(out, 10.0)
    for index in range(5):
        sink.write(np.full((32, 32, 3), index * 40, np.uint8), index / 10)
    holder = _hold(out, 2.0)
    with pytest.raises(SinkError, match="close it.*kept as .*driven.new.mp4"):
        sink.close()
    holder.join()
    assert out.read_bytes() == b"yesterday's video"
    assert (tmp_path / "driven.new.mp4").stat().st_size > 0


@pytest.mark.parametrize(("platform", "maxrss"), [("linux", 2**20), ("darwin", 2**30)])
def test_peak_memory_is_read_in_each_systems_unit(monkeypatch, platform, maxrss):
    """getrusage's ru_maxrss is KiB on Linux and bytes on macOS (before: 1024x on a Mac)."""
    resource = pytest.importorskip("resource")  # POSIX only
    from utils.memory import peak_rss_gib

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=maxrss))
    assert peak_rss_gib() == 1.0


def test_peak_memory_without_getrusage_is_unknown(monkeypatch):
    from utils.memory import peak_rss_gib

    monkeypatch.setitem(sys.modules, "resource", None)  # Windows
    assert peak_rss_gib() is None
