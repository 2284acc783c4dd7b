"""Embedder, generator and discriminator of the few-shot talking-head model (SPEC section 2)."""

from network.discriminator import Discriminator
from network.embedder import Embedder
from network.generator import Generator

__all__ = ["Discriminator", "Embedder", "Generator"]
