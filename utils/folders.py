"""Folders as their owner sees them: without the files that macOS and Windows put beside ours.

macOS writes `._NAME` (AppleDouble: NAME's extended attributes and Finder data) next to every
file it copies to an exFAT, FAT or network drive, and `.DS_Store` into every folder the Finder
shows; Windows Explorer leaves `Thumbs.db` and `desktop.ini`. A `._clip.mp4` is no video and
a `._video.npz` no record: every listing of videos, photos, store files and logs skips them.
"""

from __future__ import annotations

from pathlib import Path

OS_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})  # lower case: Windows ignores it


def is_os_file(path: Path) -> bool:
    """Whether path names one of those files (by name alone: nothing is read)."""
    return path.name.startswith("._") or path.name.lower() in OS_FILES
