"""Making person models: embedding photos and clips, assembling a person from crops, fine-tuning."""

import utils  # noqa: F401  (before torch: its MPS fallback for python -m, utils/__init__.py)
