"""Meta-learning (SPEC section 3): the step, the W table, checkpoints, DDP, monitoring, the loop."""
