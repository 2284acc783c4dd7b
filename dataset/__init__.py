"""Data pipeline: video frames -> landmarks -> the one face crop -> record store -> K-shot episodes.

See docs/DATA.md for the store layout and every choice the paper leaves open.
"""

import utils  # noqa: F401  (before torch: its MPS fallback for python -m, utils/__init__.py)
