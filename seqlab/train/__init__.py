"""Training: optimizers, the loop, checkpoints, writers and the non-training modes."""
