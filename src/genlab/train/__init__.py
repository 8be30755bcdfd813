"""The training loop, checkpoints, logging and distributed helpers shared by every family."""
