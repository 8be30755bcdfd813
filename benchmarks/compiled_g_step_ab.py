"""G's step through a compiled D against G's step through the eager D, both with ``train.compile=true``.

Two fresh models of one config are compiled (``GenerativeModel.compile_networks``); in one of them
G's adversarial loss goes through the compiled, un-distributed view of each discriminator
(``run_local``, genlab's default), in the other through the bare eager network (genlab before
this change: ``run_local`` without its compiled views). Both step on the same batches in the same
process, in alternating blocks, so machine noise hits both alike:

    python benchmarks/compiled_g_step_ab.py --threads 1 --blocks 6

Prints seconds per step of each and the ratio eager-D / compiled-D (> 1: compiling D pays).
"""

from __future__ import annotations

import argparse
import time

import torch

from genlab import registry
from genlab.bench.run import configs_dir
from genlab.bench.speed import prepared_model
from genlab.config import load_config
from genlab.core.hardware import cpu_info
from genlab.data.datasets import load_source


def compare(config: str, overrides: list[str], block: int, blocks: int) -> dict:
    """Seconds per step of both variants (after 3 warm-up steps each) and their ratio."""
    cfg = load_config(configs_dir() / config, [*overrides, "train.compile=true"])
    data = load_source(cfg.data, "train", registry.get(cfg.model.family).data_kind)
    batches = [torch.randint(0, len(data), (cfg.train.batch_size,), generator=torch.Generator().manual_seed(i))
               for i in range(block)]
    variants = {}
    for name in ("compiled D", "eager D"):
        model, step = prepared_model(cfg, data)
        model.compile_networks()
        if name == "eager D":
            model._local_runners = {}  # run_local falls back to the bare networks
        for index in batches[:3]:
            step(index, {})  # compiles
        variants[name] = step
    seconds = dict.fromkeys(variants, 0.0)
    for _ in range(blocks):
        for name, step in variants.items():
            started = time.perf_counter()
            for index in batches:
                step(index, {})
            seconds[name] += time.perf_counter() - started
    per_step = {name: total / (block * blocks) for name, total in seconds.items()}
    return per_step | {"ratio": per_step["eager D"] / per_step["compiled D"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cyclegan-emoji.yaml", help="a config in configs/ (default: %(default)s)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: %(default)s)")
    parser.add_argument("--block", type=int, default=5, help="steps per block (default: %(default)s)")
    parser.add_argument("--blocks", type=int, default=6, help="blocks per variant (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = compare(args.config, args.overrides, args.block, args.blocks)
    info = cpu_info()
    print(f"{info.name} ({' '.join(info.features)}), {args.threads} threads, {args.config} {' '.join(args.overrides)}")
    print(f"s/step: compiled D {result['compiled D']:.3f}, eager D {result['eager D']:.3f}; "
          f"eager / compiled {result['ratio']:.3f}")


if __name__ == "__main__":
    main()
