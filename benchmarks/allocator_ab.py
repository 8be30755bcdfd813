"""Does keeping freed memory pay? genlab's train step with and without it, one process.

    python benchmarks/allocator_ab.py CONFIG [key=value ...] [--threads 1] [--blocks 6] [--block-steps 3]

One model of the config (compiled if the config says ``train.compile: true``), its train step on
the same batch timed in alternating blocks: with :func:`genlab.core.allocator.reuse_freed_memory`
on (how genlab trains) and off (glibc's own behaviour, the kept memory trimmed before the block).
Each block's first step after a switch pays the switch (the heap regrows or is page-faulted again),
so more steps per block give the steady state. Prints seconds per step and the ratio
(BENCHMARKS.md, "Speed on the CPU"; docs/architecture.md).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from genlab import registry
from genlab.bench.speed import prepared_model, time_alternating
from genlab.config import load_config
from genlab.core.allocator import reuse_freed_memory
from genlab.core.hardware import cpu_info
from genlab.data.datasets import load_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.preset=lab-report data.image_size=96")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per setting, alternating")
    parser.add_argument("--block-steps", type=int, default=3, help="train steps per block")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    data = load_source(cfg.data, "train", registry.get(cfg.model.family).data_kind)
    torch.manual_seed(cfg.seed)
    model, step = prepared_model(cfg, data)
    if cfg.train.compile:
        model.compile_networks()
    index = torch.arange(min(cfg.train.batch_size, len(data)))
    for _ in range(2):  # warm-up (and compiling)
        step(index, {})

    def block(reuse: bool):
        def run():
            reuse_freed_memory(reuse)
            for _ in range(args.block_steps):
                step(index, {})
        return run

    seconds = time_alternating({"reuse freed memory": block(True), "glibc default": block(False)}, args.blocks)
    per_step = {name: [s / args.block_steps for s in values] for name, values in seconds.items()}
    print(f"{cpu_info().describe()}; {args.threads} thread(s); batch {len(index)}; "
          f"{args.blocks} blocks of {args.block_steps} steps each")
    for name, values in per_step.items():
        print(f"{name}: median {statistics.median(values):.3f} s per step (blocks: {', '.join(f'{v:.3f}' for v in values)})")
    ratio = statistics.median(per_step["glibc default"]) / statistics.median(per_step["reuse freed memory"])
    print(f"glibc default / reuse freed memory, median step time: {ratio:.3f}")


if __name__ == "__main__":
    main()
