"""Files as creators on Windows and macOS have them, each kind checked on Linux: text in UTF-8
whatever the locale (cp1252 on Windows), pictures, videos and dlib's models under folders with
non-ASCII names, the `._NAME` and `.DS_Store` files macOS leaves on shared drives, and disks
that do not tell 'abcDEF' from 'abcdef'."""

from __future__ import annotations

import ast
import ctypes
import subprocess
import sys
from pathlib import Path

import cv2
import dlib
import face_recognition_models
import numpy as np
import pytest
from random_models import tiny_meta_model
from synthetic_videos import still_frame

from dataset.clips import discover_videos
from dataset.identity import FaceDescriber
from dataset.landmarks import DetectorUnavailableError, DlibBackend, dlib_model_path
from dataset.preprocess import preprocess, read_skipped
from dataset.store import (
    MANIFESTS_DIR,
    SKIPPED_DIR,
    StoreError,
    StoreSettings,
    VideoRecord,
    check_case_twins,
    ensure_settings,
    read_manifest,
    read_settings,
    record_path,
    scan_records,
    write_manifest,
    write_record,
)
from dataset.synthetic import face_pictures, moving_clip, write_video
from dataset.video import iter_frames
from embedder_inference import main as embed_main
from live.sources import FrameSource
from models.person_model import load_person_model
from params.config import load_config, save_config
from person.embed import expand_inputs
from runtime.runlog import RunLog, read_metrics, truncate_metrics
from training.loop import prepare_run_folder
from utils.files import open_for_append
from utils.images import encode_jpeg, read_image, save_image

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "Zoë Ünïcode 顔 dir"  # spaces, Latin-1 letters and a CJK character

# Calls that read or write text in the locale's encoding unless given one, and where their
# encoding argument sits when it is given by position.
ENCODING_POSITION = {"open": 3, "read_text": 0, "write_text": 1, "fdopen": 3}
ENCODING_POSITION |= {"TextIOWrapper": 1, "FileHandler": 2, "NamedTemporaryFile": 5}
MODE_POSITION = {"open": 1, "fdopen": 1, "NamedTemporaryFile": 0}  # binary modes need none
SUBPROCESS = {"run", "Popen", "check_output", "call", "check_call"}
# `.open` of things that are not text files: PIL pictures, PyAV containers, zip members,
# os.open's descriptors, our own classes' constructors.
OTHER_OPENS = {"Image", "av", "zip", "os", "AudioCopy", "cls"}
OPENCV_FILE_FUNCTIONS = {"imread", "imreadmulti", "imwrite", "VideoWriter", "VideoCapture"}


def python_files() -> list[Path]:
    """Our .py files: the scripts at the root and the code folders (not .venv, nor a folder of
    data such as a store kept in the checkout)."""
    folders = [p for p in ROOT.iterdir() if not p.name.startswith(".") and any(p.glob("*.py"))]
    return sorted(ROOT.glob("*.py")) + sorted(p for f in folders for p in f.rglob("*.py"))


def _name(node: ast.expr) -> str | None:
    """'open' for open(...), x.open(...) and io.open(...); None for other callees."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _text_mode(call: ast.Call, position: int | None) -> bool:
    """Whether the call opens text: no mode, a text mode, or a mode only known at run time."""
    mode = _keyword(call, "mode")
    if mode is None and position is not None and len(call.args) > position:
        mode = call.args[position]
    if mode is None:
        return True
    return not (isinstance(mode, ast.Constant) and "b" in str(mode.value))


def locale_text_calls(tree: ast.AST) -> list[ast.Call]:
    """Calls that would read or write text in the locale's encoding."""
    found = []
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        name = _name(call.func)
        if name in SUBPROCESS:
            text = _keyword(call, "text") or _keyword(call, "universal_newlines")
            if text is not None and not (isinstance(text, ast.Constant) and not text.value):
                found += [call] if _keyword(call, "encoding") is None else []
            continue
        if name not in ENCODING_POSITION or _keyword(call, "encoding") is not None:
            continue
        if len(call.args) > ENCODING_POSITION[name]:
            continue
        if name == "open" and isinstance(call.func, ast.Attribute):
            if _name(call.func.value) in OTHER_OPENS or not _text_mode(call, 0):
                continue
        elif name == "NamedTemporaryFile" and _keyword(call, "mode") is None and not call.args:
            continue  # its default mode is w+b
        elif not _text_mode(call, MODE_POSITION.get(name)):
            continue
        found.append(call)
    return found


def opencv_file_calls(tree: ast.AST) -> list[ast.Call]:
    """cv2 calls that open a file by its name (a camera's index is no file)."""
    found = []
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        func = call.func
        if not isinstance(func, ast.Attribute) or _name(func.value) != "cv2":
            continue
        first = call.args[0] if call.args else None
        camera = isinstance(first, ast.Constant) and isinstance(first.value, int)
        camera |= isinstance(first, ast.Call) and _name(first.func) == "int"
        if func.attr in OPENCV_FILE_FUNCTIONS and not (func.attr == "VideoCapture" and camera):
            found.append(call)
    return found


def offenders(find) -> list[str]:
    """'FILE:LINE: CALL' for every call that find returns in our .py files."""
    return [
        f"{path.relative_to(ROOT)}:{call.lineno}: {ast.unparse(call)[:90]}"
        for path in python_files()
        for call in sorted(find(ast.parse(path.read_bytes(), str(path))), key=lambda c: c.lineno)
    ]


def test_every_text_file_and_pipe_names_its_encoding():
    """open(), Path.open/read_text/write_text, os.fdopen, TextIOWrapper, logging's FileHandler
    and subprocesses in text mode default to the locale's encoding: cp1252 on a Western
    Windows, where a store's JSON or a log with 'Zoë' in it is written in one encoding and read
    in another, and '顔' cannot be written at all. Each must say encoding="utf-8" or be binary."""
    found = offenders(locale_text_calls)
    assert found == [], "no encoding given:\n" + "\n".join(found)


def test_no_opencv_call_opens_a_file_by_name():
    """OpenCV takes a path as narrow bytes, which Windows reads in the ANSI code page: under
    "C:\\Users\\Zoë" imread finds nothing and VideoWriter writes a garbled name. Pictures go
    through cv2.imencode/imdecode and Python's files (utils/images.py), videos through PyAV."""
    found = offenders(opencv_file_calls)
    assert found == [], "a file opened by OpenCV:\n" + "\n".join(found)


def test_text_files_round_trip_in_utf8(tiny_config, tmp_path):
    """A config, a store (settings, record, manifest), the skipped-videos log and metrics.jsonl
    with non-ASCII names, written and read back. Run under -X warn_default_encoding by the next
    test, where a read or write in the locale's encoding is an error."""
    tiny_config.data.store = str(tmp_path / FOLDER / "store")
    save_config(tiny_config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").data.store == tiny_config.data.store

    store, key = tmp_path / "store", "Zoë/vidéo 顔"
    ensure_settings(store, StoreSettings.from_config(tiny_config))
    assert read_settings(store) == StoreSettings.from_config(tiny_config)
    write_record(store, tiny_record("Zoë", "vidéo 顔"))
    write_manifest(store)
    assert [entry.key for entry in read_manifest(store)] == [key]
    (store / SKIPPED_DIR).mkdir()
    with open_for_append(store / SKIPPED_DIR / "shard-0-of-1.tsv") as log:
        log.write(f"{key}/clip 2.mp4\tclip_unreadable\tnur 3 Bilder – zu kurz\n")
    assert read_skipped(store) == {f"{key}/clip 2.mp4": "clip_unreadable"}

    run = RunLog(tmp_path / "run")
    for step in range(3):
        run.scalars(step, {"loss_g/vgg19": 0.5})
    run.close()
    truncate_metrics(tmp_path / "run", 1)
    assert [record["step"] for record in read_metrics(tmp_path / "run")] == [0, 1]


def test_no_text_is_read_or_written_in_the_locale_encoding_at_run_time():
    """The same rule seen at run time, over the tests that write and read configs, stores, logs
    and metrics: Python's EncodingWarning (-X warn_default_encoding), an error where it points
    into our code (OpenCV and scikit-image raise it in their own modules). It catches what the
    static test cannot see (a library we hand a path to that opens it as text); subprocesses
    are the static test's alone, since their warning points into the subprocess module."""
    ours = {path.relative_to(ROOT).parts[0].removesuffix(".py") for path in python_files()}
    ours |= {path.stem for path in (ROOT / "tests").glob("*.py")}  # tests import flat
    rule = f"error::EncodingWarning:({'|'.join(sorted(ours))})(\\.|$)"
    tests = [
        "tests/test_config.py",
        "tests/test_portability.py::test_text_files_round_trip_in_utf8",
    ]
    pytest_options = ["-q", "-p", "no:cacheprovider", "-o", f"filterwarnings={rule}"]
    result = subprocess.run(
        [sys.executable, "-X", "warn_default_encoding", "-m", "pytest", *pytest_options, *tests],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def tiny_record(identity: str, video: str) -> VideoRecord:
    """A one-frame record of a black crop."""
    return VideoRecord(
        identity=identity,
        video=video,
        jpeg_frames=[encode_jpeg(np.zeros((8, 8, 3), np.uint8))],
        landmarks=np.zeros((1, 68, 2), np.float32),
        crop_matrices=np.zeros((1, 2, 3)),
        clips=["clip.mp4"],
        clip_indices=np.zeros(1, np.int32),
        frame_indices=np.zeros(1, np.int32),
    )


def narrow(function, refused):
    """function as on Windows, where the library opens a path by narrow (ANSI) name: a path
    with non-ASCII characters is not found, and the call gives refused() instead."""

    def call(path, *args, **kwargs):
        if isinstance(path, str) and not path.isascii():
            return refused()
        return function(path, *args, **kwargs)

    return call


@pytest.fixture
def windows_opencv(monkeypatch):
    """OpenCV's file functions as they behave on Windows with a non-ASCII path: imread gives
    None, imwrite False, VideoWriter and VideoCapture do not open."""
    monkeypatch.setattr(cv2, "imread", narrow(cv2.imread, lambda: None))
    monkeypatch.setattr(cv2, "imwrite", narrow(cv2.imwrite, lambda: False))
    monkeypatch.setattr(cv2, "VideoWriter", narrow(cv2.VideoWriter, cv2.VideoWriter))
    monkeypatch.setattr(cv2, "VideoCapture", narrow(cv2.VideoCapture, cv2.VideoCapture))


def test_pictures_videos_and_a_person_under_a_non_ascii_folder(windows_opencv, tmp_path):
    """Photos and a clip saved, read back and embedded into a person model, all in a folder
    named like a Windows user's ("Zoë", a CJK character, spaces)."""
    folder = tmp_path / FOLDER
    photo = read_image(ROOT / "examples" / "faces" / "astronaut.jpg")
    for name in ("astronaut 顔.png", "astronaut ë.jpg"):
        save_image(photo, folder / name)
        assert read_image(folder / name).shape == photo.shape
    still, points = still_frame(face_pictures()["grace_hopper"])
    write_video(folder / "hopper ë.mp4", moving_clip(still, points, 0, 6)[0])
    assert len(list(iter_frames(folder / "hopper ë.mp4"))) == 6
    meta = tiny_meta_model(tmp_path / "meta.pt")
    person = folder / "Zoë 顔.pt"
    assert embed_main(["--model", str(meta), "--out", str(person), str(folder)]) == 0
    assert len(load_person_model(person).frames) > 0


class ShortNames:
    """ctypes.windll with GetShortPathNameW answering from a table (a path not in it has no
    short name: Windows then gives the long path back)."""

    def __init__(self, short: dict[str, str]) -> None:
        self.kernel32 = self
        self.short = short

    def GetShortPathNameW(self, path: str, buffer, size: int) -> int:
        buffer.value = self.short.get(path, path)
        return len(buffer.value)


def test_dlib_loads_its_models_by_their_short_names_on_windows(tmp_path, monkeypatch):
    """dlib opens its model files by narrow name: under a non-ASCII virtual environment on
    Windows they are opened by their 8.3 names, or refused with what to do."""
    models = tmp_path / FOLDER
    predictor, describer = models / "shape_predictor.dat", models / "recognition.dat"
    short = {str(predictor): "C:\\Users\\ZO~1\\SHAPE_~1.DAT", str(describer): "C:\\RECOGN~1.DAT"}
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "windll", ShortNames(short), raising=False)
    monkeypatch.setattr(
        face_recognition_models, "pose_predictor_model_location", lambda: str(predictor)
    )
    monkeypatch.setattr(
        face_recognition_models, "face_recognition_model_location", lambda: str(describer)
    )
    refused = lambda: pytest.fail("dlib was given a non-ASCII path")  # noqa: E731
    monkeypatch.setattr(dlib, "shape_predictor", narrow(lambda path: path, refused))
    monkeypatch.setattr(dlib, "face_recognition_model_v1", narrow(lambda path: path, refused))
    assert DlibBackend()._predictor == short[str(predictor)]
    assert FaceDescriber()._model == short[str(describer)]

    assert dlib_model_path("C:\\venv\\model.dat") == "C:\\venv\\model.dat"
    with pytest.raises(DetectorUnavailableError, match="folder whose path is ASCII only"):
        dlib_model_path(str(models / "no short name.dat"))
    monkeypatch.setattr(sys, "platform", "darwin")  # UTF-8 bytes, which dlib opens
    assert dlib_model_path(str(predictor)) == str(predictor)


OS_FILES = ("._{}", ".DS_Store", "Thumbs.db", "desktop.ini")  # {}: the file macOS describes
# An AppleDouble header, then binary attributes: no video, picture, record, JSON or UTF-8 text.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02\x80\xff\xfe"


def plant_os_files(folder: Path, beside: str) -> None:
    """What macOS and Windows write into a folder on an exFAT or network drive."""
    for name in OS_FILES:
        (folder / name.format(beside)).write_bytes(APPLE_DOUBLE)


def test_files_that_macos_and_windows_leave_are_not_videos_photos_or_records(tiny_config, tmp_path):
    """`._clip.mp4` beside clip.mp4, `.DS_Store` and the like are skipped by every listing
    instead of being read as damaged clips, photos, records, manifests or logs, and leave an
    empty folder empty."""
    tree = tmp_path / "videos"
    (tree / "id1" / "video1").mkdir(parents=True)
    (tree / "id1" / "video1" / "c.mp4").write_bytes(b"")  # found by name, not read
    plant_os_files(tree / "id1" / "video1", "c.mp4")
    plant_os_files(tree, "id1")
    assert [(s.key, [c.name for c in s.clips]) for s in discover_videos(tree)] == [
        ("id1/video1", ["c.mp4"])
    ]
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(np.zeros((8, 8, 3), np.uint8), photos / "me.png")
    plant_os_files(photos, "me.png")
    assert expand_inputs([photos]) == [photos / "me.png"]
    source = FrameSource(str(photos))
    assert len(list(source)) == 1 and source.unreadable == []
    source.close()

    store = tmp_path / "store"
    path = write_record(store, tiny_record("id1", "video1"))
    plant_os_files(path.parent, path.name)
    assert [entry.key for entry in write_manifest(store)] == ["id1/video1"]
    plant_os_files(store / MANIFESTS_DIR, "merged.json")
    assert [entry.key for entry in read_manifest(store)] == ["id1/video1"]
    assert [entry.key for entry in scan_records(store)] == ["id1/video1"]
    (store / SKIPPED_DIR).mkdir()
    plant_os_files(store / SKIPPED_DIR, "shard-0-of-1.tsv")
    assert read_skipped(store) == {}
    run = tmp_path / "run"  # a new run's folder that the Finder has shown
    run.mkdir()
    plant_os_files(run, "run")
    assert prepare_run_folder(run, resume=False) is None


def test_videos_whose_names_differ_only_in_case_are_refused(tiny_config, tmp_path):
    """On a case-insensitive disk 'abcDEF' and 'abcdef' (VoxCeleb-style ids) would be one
    record file: refused before anything is written, naming the pair, whether both are in
    the source tree or one is already in the store (a store made on Linux stays readable)."""
    tree, store = tmp_path / "videos", tmp_path / "store"
    for video in ("abcDEF", "abcdef", "other"):
        (tree / "id1" / video).mkdir(parents=True)
        (tree / "id1" / video / "00001.mp4").write_bytes(b"")
    with pytest.raises(StoreError, match="id1/abcDEF and id1/abcdef.*Rename one"):
        preprocess(tree, store, tiny_config, workers=0, progress=False)
    assert not store.exists()

    write_record(store, tiny_record("id1", "abcDEF"))
    check_case_twins(store, ["id1/abcDEF", "id1/other"])  # the same video again is no twin
    with pytest.raises(StoreError, match="id1/abcDEF and id1/abcdef"):
        check_case_twins(store, ["id1/abcdef"])
    # Identities that differ in case share a folder only in the same bucket of the store.
    same = next(f"id{n}" for n in range(1000) if _bucket_of(f"id{n}") == _bucket_of(f"ID{n}"))
    with pytest.raises(StoreError, match=f"{same.upper()} and {same}"):
        check_case_twins(store, [f"{same}/v1", f"{same.upper()}/v2"])
    other = next(f"id{n}" for n in range(1000) if _bucket_of(f"id{n}") != _bucket_of(f"ID{n}"))
    check_case_twins(store, [f"{other}/v1", f"{other.upper()}/v2"])


def _bucket_of(identity: str) -> Path:
    return record_path(Path("store"), identity, "v").parent.parent
