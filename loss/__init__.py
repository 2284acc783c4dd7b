"""Losses of the talking-head model: content (VGG19 + VGGFace), adversarial, match."""
