"""The creator's app: make, fine-tune, drive and distil an avatar in the browser.

    python app.py [--model RUN/meta.pt] [--host 127.0.0.1] [--port 7860] [--set key=value ...]

Serves a local page (Gradio) at http://127.0.0.1:7860 with the Person, Drive and Fast avatar
tabs; each browser tab works in its own folder under --workdir (default out/app).
"""

from __future__ import annotations

import sys

import utils  # noqa: F401  (first: torch's MPS fallback, utils/__init__.py)
from webapp.server import main

if __name__ == "__main__":
    sys.exit(main())
