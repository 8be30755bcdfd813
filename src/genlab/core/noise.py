"""Training noise that makes N processes with batch B equal one process with batch N·B.

Every process holds the same generator (same seed, same state) and draws the noise of the whole
global batch, then keeps the rows of its own samples. :class:`torch.utils.data.DistributedSampler`
gives rank ``r`` the samples ``r, r + N, r + 2N, ...`` of the shuffled order, so rank ``r`` keeps
rows ``r::N``. With one process this is an ordinary generator. Drawing the full global batch costs
a few kilobytes per step.

Evaluation and previews use a ``SharedNoise`` of their own (rank 0 of 1, a fixed seed): the same
API, an ordinary generator.
"""

from __future__ import annotations

import torch


class SharedNoise:
    """A CPU generator shared (by seed) across processes; hands each rank its rows of global draws."""

    def __init__(self, seed: int, rank: int = 0, world_size: int = 1):
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def _rows(self, draw, local_rows: int, shape: tuple[int, ...]) -> torch.Tensor:
        full = draw((local_rows * self.world_size, *shape), generator=self.generator)
        return full[self.rank :: self.world_size]

    def randn(self, local_rows: int, *shape: int) -> torch.Tensor:
        """Standard normal ``(local_rows, *shape)`` float32 on the CPU."""
        return self._rows(torch.randn, local_rows, shape)

    def rand(self, local_rows: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) ``(local_rows, *shape)`` float32 on the CPU."""
        return self._rows(torch.rand, local_rows, shape)

    def randint(self, local_rows: int, high: int) -> torch.Tensor:
        """Integers ``(local_rows,)`` int64 uniform in ``[0, high)`` (e.g. a partner index into a dataset of ``high`` items)."""
        return self._rows(lambda shape, generator: torch.randint(high, shape, generator=generator), local_rows, ())

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
