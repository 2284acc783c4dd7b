"""Each browser tab's own folder: what it uploads, makes and drives lives there, so two tabs never
write each other's files, and nothing already there is ever replaced (a new name is chosen)."""

from __future__ import annotations

import re
from pathlib import Path


class Workspace:
    """ROOT/SESSION/: one browser tab's files (SESSION: Gradio's session hash, or any name)."""

    def __init__(self, root: Path, session: str) -> None:
        name = re.sub(r"[^A-Za-z0-9_-]", "", session)[:32] or "session"
        self.folder = root / name

    def free_path(self, stem: str, suffix: str) -> Path:
        """FOLDER/STEM.SUFFIX, or STEM-2.SUFFIX, STEM-3.SUFFIX ...: the first name that neither
        a file nor a job's work folder (NAME.work) uses yet. Creates the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem).strip("._") or "file"
        for number in range(1, 10_000):
            name = stem if number == 1 else f"{stem}-{number}"
            path = self.folder / f"{name}{suffix}"
            if not path.exists() and not path.with_name(path.name + ".work").exists():
                return path
        raise OSError(f"{self.folder}: no free name for {stem}{suffix}")
