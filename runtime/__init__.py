"""The runtime that several jobs share: the adversarial update of meta-learning and fine-tuning."""
