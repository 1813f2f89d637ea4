"""Training: options schema, the loop, checkpoints of training state."""
