"""The two model files a user holds: the meta-model (E, G, D of a run) and a person model."""
