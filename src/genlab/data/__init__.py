"""Datasets: each decodes once into an in-memory uint8 tensor (:mod:`genlab.data.datasets`), served
by the data sources of :mod:`genlab.data.sources`."""
