"""Plain ``torch.distributed`` under ``torchrun`` (env:// contract); world size 1 creates no group.

Backend: NCCL on GPUs, gloo on CPU. Rank 0 logs, samples and checkpoints; sums are all-reduced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from genlab.errors import ConfigError


@dataclass
class DistContext:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def start(cls, device: str = "auto") -> DistContext:
        """Read torchrun's environment, pick the device and, if several processes, join the group."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("config key 'train.device': got 'cuda' but no CUDA device is available; "
                              "allowed here: auto, cpu")
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        if world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return cls(rank, world_size, local_rank, dev)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum a list of floats over all processes (float64)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any."""
        return bool(self.all_reduce_sum([float(flag)])[0]) if self.distributed else flag

    def gather_objects(self, obj):
        """List of ``obj`` from every rank (on every rank)."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def ddp_wrapper(self, sync_batchnorm: bool = False):
        """Function (name, network) → DDP-wrapped network for :meth:`GenerativeModel.wrap_networks`.

        ``forward_sync_buffers=False`` (formerly ``broadcast_buffers=False``): a network may run
        several times per step (GAN D on real and fake), and re-broadcasting BatchNorm buffers
        between those calls would be wrong.
        ``sync_batchnorm`` replaces BatchNorm layers (in place) by SyncBatchNorm, which PyTorch
        implements for GPUs only.
        """
        if sync_batchnorm and self.device.type == "cpu":
            raise ConfigError("config key 'train.sync_batchnorm': got true, but SyncBatchNorm needs GPUs "
                              "(PyTorch has no CPU implementation); allowed on CPU: false")

        def wrap(name: str, net: nn.Module) -> nn.Module:
            if not any(p.requires_grad for p in net.parameters()):
                return net
            if sync_batchnorm:
                net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Buffers (BatchNorm statistics, spectral-norm vectors) are synced from rank 0 once,
            # at construction, and never during forward passes.
            return DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
        return wrap
