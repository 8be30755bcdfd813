"""Peak resident memory of each family's default config: full dataset in memory, a few train steps
and one test batch (memory does not grow after the first steps), with freed memory kept for reuse
as training keeps it (``train.reuse_freed_memory``; pass ``train.reuse_freed_memory=false`` for glibc's
own behaviour).

    python benchmarks/peak_memory.py configs/vae-mnist.yaml      # one config per process

Prints one JSON line with the config and the peak RSS in MiB.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from genlab.config import load_config
from genlab.core.allocator import keep_freed_memory_if
from genlab.nn.layers import reuse_winograd_weights
from genlab.train.distributed import DistContext
from genlab.train.loop import Trainer, peak_rss_mb


def main() -> None:
    config_path = sys.argv[1]
    torch.set_num_threads(2)
    cfg = load_config(config_path, sys.argv[2:])
    keep_freed_memory_if(cfg.train.reuse_freed_memory)  # as genlab train does
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir), DistContext())
        from genlab.data.sources import epoch_batches, in_memory_format

        batches = epoch_batches(len(trainer.train_data), cfg.train.batch_size, seed=0, epoch=0)
        for step, index in enumerate(batches[:5]):
            batch = trainer.train_data.batch(index, trainer.noise, torch.device("cpu"))
            with reuse_winograd_weights():  # as the training loop runs a step
                trainer.model.train_step(in_memory_format(batch, trainer.memory_format), step)
    print(json.dumps({"config": config_path, "overrides": sys.argv[2:], "batch_size": cfg.train.batch_size,
                      "train_images": len(trainer.train_data), "peak_rss_mib": round(peak_rss_mb())}))


if __name__ == "__main__":
    main()
