"""Datasets: each source decodes once into an in-memory uint8 tensor (see :mod:`genlab.data.memory`)."""
