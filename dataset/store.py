"""The preprocessed store: one record file per video, a sharded folder tree and a manifest.

Layout (docs/DATA.md)::

    STORE/store.json                         crop and sampling settings the store was built with
    STORE/manifests/<name>.json              records (key, path, identity, frame count), one
                                             file per shard; the manifest is their union
    STORE/records/<bb>/<identity>/<video>.npz    bb = 2 hex digits of a hash of the identity
    STORE/skipped/<shard>.tsv                videos that gave no record, with the reason

256 buckets keep every folder small: VoxCeleb2 dev (5,994 identities, ~145k videos) puts
about 23 identities in a bucket; a flat folder of a million one-video people about 4k.
Every file is written to a temporary name in its folder and then renamed (atomic on POSIX), so
a killed run never leaves half a record. Records are read whole by path, with no open handles
kept, so DataLoader worker processes can read any record at any time. Names are the videos'
own; two that differ only in case are refused (``check_case_twins``), since a case-insensitive
disk (macOS, Windows) would keep one file for both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.face import CROP_VERSION, CropSettings
from params.config import Config
from utils.files import atomic_write_bytes
from utils.folders import is_os_file
from utils.images import image_size

RECORDS_DIR = "records"
MANIFESTS_DIR = "manifests"
MERGED_MANIFEST = "merged"
SETTINGS_NAME = "store.json"
SKIPPED_DIR = "skipped"
RECORD_SUFFIX = ".npz"
SPLITS = ("train", "validation", "all")


class StoreError(RuntimeError):
    """A store that is missing, damaged, or was built with other settings."""


@dataclass
class VideoRecord:
    """One video's sampled frames, cropped, with landmarks in crop coordinates."""

    identity: str
    video: str
    jpeg_frames: list[bytes]
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixel coordinates
    crop_matrices: np.ndarray  # (N, 2, 3) float64, source frame -> crop
    clips: list[str]  # clip file names of the video
    clip_indices: np.ndarray  # (N,) index into clips of each frame
    frame_indices: np.ndarray  # (N,) frame number inside its clip

    @property
    def key(self) -> str:
        return record_key(self.identity, self.video)


@dataclass(frozen=True)
class StoreSettings:
    """What every record of a store shares; a run with other settings must use another store.

    crop_version names the crop function's behaviour (dataset/face.py CROP_VERSION): a store
    made by an older crop is refused, never silently mixed with or trained against new crops.
    """

    crop_version: int
    image_size: int
    face_width: float
    eye_line: float
    crop_padding: str
    stabilizer_radius: int
    frames_per_video: int
    detector: str
    jpeg_quality: int
    identity_check: bool
    identity_threshold: float

    @classmethod
    def from_config(cls, config: Config) -> StoreSettings:
        data = config.data
        return cls(
            crop_version=CROP_VERSION,
            image_size=config.model.image_size,
            face_width=data.face_width,
            eye_line=data.eye_line,
            crop_padding=data.crop_padding,
            stabilizer_radius=data.stabilizer_radius,
            frames_per_video=data.frames_per_video,
            detector=data.detector,
            jpeg_quality=data.jpeg_quality,
            identity_check=data.identity_check,
            identity_threshold=data.identity_threshold,
        )

    @property
    def crop(self) -> CropSettings:
        return CropSettings(self.image_size, self.face_width, self.eye_line, self.crop_padding)


@dataclass(frozen=True)
class ManifestEntry:
    key: str
    path: str  # relative to the store
    identity: str
    video: str
    num_frames: int


def record_key(identity: str, video: str) -> str:
    return f"{identity}/{video}"


def _bucket(identity: str) -> str:
    return hashlib.sha1(identity.encode()).hexdigest()[:2]


def record_path(store: Path, identity: str, video: str) -> Path:
    return store / RECORDS_DIR / _bucket(identity) / identity / f"{video}{RECORD_SUFFIX}"


def write_record(store: Path, record: VideoRecord) -> Path:
    """Write one record atomically; returns its path."""
    offsets = np.cumsum([0] + [len(frame) for frame in record.jpeg_frames], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        identity=np.array(record.identity),
        video=np.array(record.video),
        jpeg=np.frombuffer(b"".join(record.jpeg_frames), np.uint8),
        jpeg_offsets=offsets,
        landmarks=record.landmarks.astype(np.float32),
        crop_matrices=record.crop_matrices.astype(np.float64),
        clips=np.array(record.clips, dtype=str),
        clip_indices=record.clip_indices.astype(np.int32),
        frame_indices=record.frame_indices.astype(np.int32),
    )
    path = record_path(store, record.identity, record.video)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# A record holds tens of JPEG frames (about 1 MB at 256 px); one that would decode to more
# than this is damaged or hostile, and is refused before anything is inflated.
MAX_RECORD_BYTES = 256 * 2**20


def _check_sizes(data: np.lib.npyio.NpzFile, path: Path) -> None:
    """Refuse a record whose arrays would inflate past MAX_RECORD_BYTES, from their headers."""
    total = 0
    for info in data.zip.infolist():
        with data.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if total > MAX_RECORD_BYTES or info.file_size > MAX_RECORD_BYTES:
            raise StoreError(f"record {path} would decode to more than {MAX_RECORD_BYTES} bytes")


# Landmarks are in crop pixels, the face near the crop's centre: points further outside the
# frame than this many frame sides are no tracked face (a damaged or hostile record; 3e38 drew
# blank landmark pictures that were trained on).
LANDMARK_MARGIN = 1.0


def _landmarks_far_outside(record: VideoRecord) -> str | None:
    """Why the record's finite landmarks are no face in its frames (more than LANDMARK_MARGIN
    frame sides outside the first frame's size, or frames that are no pictures); None if
    they are."""
    try:
        width, height = image_size(io.BytesIO(record.jpeg_frames[0]))
    except OSError:
        return "frame 0 is no picture"
    low = -LANDMARK_MARGIN * np.array([width, height])
    high = (1 + LANDMARK_MARGIN) * np.array([width, height])
    outside = ((record.landmarks < low) | (record.landmarks > high)).any(axis=-1)
    if not outside.any():
        return None
    frame, point = np.argwhere(outside)[0]
    x, y = record.landmarks[frame, point]
    return (
        f"landmarks: {int(outside.sum())} points lie more than {LANDMARK_MARGIN:g} frame side "
        f"outside the {width}x{height} frame (frame {frame}: ({x:.3g}, {y:.3g}))"
    )


def _validate(record: VideoRecord, path: Path) -> VideoRecord:
    """The shapes and values a record must have; StoreError otherwise: landmarks must be
    finite and lie in the frame, up to LANDMARK_MARGIN frame sides outside it."""
    count = len(record.jpeg_frames)
    problems = []
    if record.landmarks.shape != (count, 68, 2) or not np.isfinite(record.landmarks).all():
        problems.append(f"landmarks: shape {record.landmarks.shape} or non-finite values")
    elif count and (outside := _landmarks_far_outside(record)):
        problems.append(outside)
    if record.crop_matrices.shape != (count, 2, 3) or not np.isfinite(record.crop_matrices).all():
        problems.append("crop matrices")
    if len(record.clip_indices) != count or len(record.frame_indices) != count:
        problems.append("frame numbers")
    elif count and not 0 <= record.clip_indices.min() <= record.clip_indices.max() < len(
        record.clips
    ):
        problems.append("clip indices")
    if problems:
        raise StoreError(f"damaged record {path}: {', '.join(problems)}")
    return record


def read_record(path: Path) -> VideoRecord:
    """Read one record file whole (no handle stays open); StoreError if it is damaged.

    Sizes are checked against MAX_RECORD_BYTES before any array is inflated, and shapes and
    values (finite landmarks in the frame, consistent counts) after: training replaces such a
    record with another video and logs it (dataset/voxceleb.py).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            _check_sizes(data, path)
            jpeg, offsets = data["jpeg"], data["jpeg_offsets"]
            if (
                offsets.ndim != 1
                or len(offsets) == 0
                or offsets[0] != 0
                or np.any(np.diff(offsets) < 0)
                or offsets[-1] != len(jpeg)
            ):
                raise StoreError(f"damaged record {path}: frame offsets")
            record = VideoRecord(
                identity=str(data["identity"]),
                video=str(data["video"]),
                jpeg_frames=[jpeg[a:b].tobytes() for a, b in itertools.pairwise(offsets)],
                landmarks=data["landmarks"],
                crop_matrices=data["crop_matrices"],
                clips=[str(clip) for clip in data["clips"]],
                clip_indices=data["clip_indices"],
                frame_indices=data["frame_indices"],
            )
    except (OSError, KeyError, ValueError, MemoryError, zipfile.BadZipFile) as error:
        raise StoreError(f"cannot read record {path}: {error}") from error
    return _validate(record, path)


def split_of(identity: str, validation_fraction: float) -> str:
    """'train' or 'validation' by a stable hash of the identity: growing a store moves no one."""
    position = int(hashlib.sha1(identity.encode()).hexdigest()[-8:], 16) / 0x1_0000_0000
    return "validation" if position < validation_fraction else "train"


def _differences(have: object, want: object, names: dict[str, str]) -> str:
    """'label: store has X, run asks Y' for each field (name -> label) that differs."""
    return ", ".join(
        f"{label}: store has {getattr(have, name)!r}, run asks {getattr(want, name)!r}"
        for name, label in names.items()
        if getattr(have, name) != getattr(want, name)
    )


def ensure_settings(store: Path, settings: StoreSettings) -> None:
    """Record the settings of a new store, or check that an existing store has the same."""
    path = store / SETTINGS_NAME
    if not path.exists():
        atomic_write_bytes(path, json.dumps(dataclasses.asdict(settings), indent=2).encode())
        return
    existing = read_settings(store)
    if existing != settings:
        names = {field.name: field.name for field in dataclasses.fields(StoreSettings)}
        differences = _differences(existing, settings, names)
        raise StoreError(
            f"store {store} was built with other settings ({differences}): "
            "use another --dst, or the store's settings"
        )


def read_settings(store: Path) -> StoreSettings:
    """The store's settings; a store made by an older crop is refused with what to do."""
    path = store / SETTINGS_NAME
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StoreError(f"no valid store settings at {path}: {error}") from error
    version = values.get("crop_version", 1) if isinstance(values, dict) else None
    if version != CROP_VERSION:
        raise StoreError(
            f"store {store} was made by an older face crop (version {version}, now "
            f"{CROP_VERSION}): its frames are framed differently from what every other stage "
            "crops now. Preprocess the videos again into a new store: "
            "python -m dataset.preprocess --src VIDEOS --dst NEW_STORE"
        )
    try:
        return StoreSettings(**values)
    except TypeError as error:
        raise StoreError(f"damaged store settings at {path}: {error}") from error


def check_crop_matches(store: Path, settings: StoreSettings, config: Config) -> None:
    """The run's crop settings must be the store's: every later stage crops with the config."""
    wanted = CropSettings.from_config(config)
    if settings.crop != wanted:
        differences = _differences(settings.crop, wanted, CropSettings.CONFIG_KEYS)
        raise StoreError(
            f"store {store} was cropped with other settings than this run's config "
            f"({differences}); set the config to the store's "
            f"values (its {SETTINGS_NAME}) or preprocess again with this config"
        )


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Stable assignment of a video to one of N shards, whatever order the machines list files."""
    index, count = shard
    return zlib.crc32(key.encode()) % count == index


def shard_name(shard: tuple[int, int]) -> str:
    return f"shard-{shard[0]}-of-{shard[1]}"


def is_temporary(path: Path) -> bool:
    """A temporary file of an atomic write (utils/files.py: .STEM.RANDOM.tmp.SUFFIX), which a
    killed run can leave; a video's own name may start with a dot (".take1.mp4")."""
    return path.name.startswith(".") and path.name.endswith(f".tmp{path.suffix}")


def _record_files(store: Path) -> Iterator[tuple[Path, str, str]]:
    """(path, identity, video) of every record file in the tree; the temporary files of a
    killed run and the `._NAME` files macOS leaves on shared drives are no records."""
    for path in (store / RECORDS_DIR).glob(f"*/*/*{RECORD_SUFFIX}"):
        if not is_temporary(path) and not is_os_file(path):
            yield path, path.parent.name, path.name[: -len(RECORD_SUFFIX)]


def _folded(name: str) -> str:
    """name as a case-insensitive disk compares it (macOS's also ignores Unicode composition):
    letter by letter, so 'ß' and 'ss' stay two names (casefold would make them one)."""
    return unicodedata.normalize("NFC", name).upper().lower()


def check_case_twins(store: Path, keys: Iterable[str]) -> None:
    """Refuse videos whose record names differ only in case, among keys and the store's records.

    On a case-insensitive disk (the default on macOS and Windows) the records of 'id1/abcDEF'
    and 'id1/abcdef' are one file, and identities 'Ann' and 'ann' one folder when they share
    a bucket: one video would silently stand for the other. StoreError names each pair and
    what to do. Record names stay as they are, so every existing store reads as before.
    """
    stored = (record_key(identity, video) for _, identity, video in _record_files(store))
    first: dict[str, str] = {}
    twins = set()
    for key in sorted({*keys, *stored}):
        identity, video = key.split("/", 1)
        folder = f"{_bucket(identity)}/{identity}"
        for name, shown in ((folder, identity), (f"{folder}/{video}", key)):
            seen = first.setdefault(_folded(name), shown)
            if seen != shown:
                twins.add(f"{seen} and {shown}")
                break
    if twins:
        raise StoreError(
            f"names that differ only in case would share one record on a case-insensitive disk "
            f"(macOS, Windows): {'; '.join(sorted(twins))}. Rename one of each pair in the "
            "source folder (e.g. abcdef -> abcdef_2) and run again"
        )


def scan_records(
    store: Path, include: Callable[[str], bool] = lambda key: True
) -> list[ManifestEntry]:
    """Every finished record in the tree whose key passes include, sorted by key."""
    entries = []
    for path, identity, video in _record_files(store):
        key = record_key(identity, video)
        if not include(key):
            continue
        relative = path.relative_to(store).as_posix()
        _check_confined(
            store,
            relative,
            f"store {store}",
            "a link to a file elsewhere is not read: put the record file itself there, or "
            "delete it, and run again",
        )
        try:
            with np.load(path, allow_pickle=False) as data:
                num_frames = len(data["landmarks"])
        except (OSError, KeyError, ValueError) as error:
            raise StoreError(f"damaged record {path}: {error}; delete it and rerun") from error
        entries.append(ManifestEntry(key, relative, identity, video, num_frames))
    return sorted(entries, key=lambda entry: entry.key)


def write_manifest(store: Path, shard: tuple[int, int] | None = None) -> list[ManifestEntry]:
    """Write the manifest of one shard's records, or (shard None) of every record.

    Each shard writes only its own file, so shards that finish at the same moment on different
    machines cannot overwrite each other's entries; readers take the union.
    """
    if shard is None:
        name, entries = MERGED_MANIFEST, scan_records(store)
    else:
        name, entries = shard_name(shard), scan_records(store, lambda key: in_shard(key, shard))
    payload = {"records": [dataclasses.asdict(entry) for entry in entries]}
    atomic_write_bytes(store / MANIFESTS_DIR / f"{name}.json", json.dumps(payload).encode())
    return entries


def read_manifest(store: Path) -> list[ManifestEntry]:
    """The union of all manifest files of a store, sorted by key."""
    paths = sorted(p for p in (store / MANIFESTS_DIR).glob("*.json") if not is_os_file(p))
    if not paths:
        raise StoreError(
            f"no manifest in {store / MANIFESTS_DIR}: "
            "build the store with python -m dataset.preprocess"
        )
    entries: dict[str, ManifestEntry] = {}
    for path in paths:
        try:
            for values in json.loads(path.read_text(encoding="utf-8"))["records"]:
                entry = ManifestEntry(**values)
                _check_confined(store, str(entry.path), f"manifest {path}", "rerun with --merge")
                entries[entry.key] = entry
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise StoreError(f"damaged manifest {path}: {error}; rerun with --merge") from error
    return [entries[key] for key in sorted(entries)]


def _check_confined(store: Path, relative: str, where: str, remedy: str) -> None:
    """StoreError 'WHERE: record path RELATIVE points outside STORE/records; REMEDY' when a
    record path (relative to the store) is absolute, climbs out with '..', or is a link to a
    file outside the records folder: such a record would be read from anywhere."""
    path = Path(relative)
    records = (store / RECORDS_DIR).resolve()
    inside = (store / path).resolve()
    if path.is_absolute() or ".." in path.parts or records not in inside.parents:
        raise StoreError(f"{where}: record path {relative!r} points outside {records}; {remedy}")
