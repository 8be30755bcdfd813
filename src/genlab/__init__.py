"""genlab: train, sample, evaluate and compare generative image models."""

__version__ = "0.1.0"
