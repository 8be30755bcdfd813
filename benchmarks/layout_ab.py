"""Channels-last against contiguous (NCHW) memory layout for genlab's own train step, per config.

Two fresh models of one config, identical except for ``train.channels_last``, step on the same
batches in the same process; blocks alternate between them so machine noise hits both alike. The
ratio is contiguous images/s over channels-last images/s (> 1: the contiguous layout is faster).
Run it once as is and once capped to AVX2 to see both kinds of CPU:

    python benchmarks/layout_ab.py --threads 1 --blocks 6 [--only U-Net] [--compile]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/layout_ab.py --threads 1 --blocks 6

Prints one Markdown row per config (the CPU and the precision ``train.precision=auto`` chose).
"""

from __future__ import annotations

import argparse

import torch

from genlab import registry
from genlab.bench.run import CASES as BENCH_CASES
from genlab.bench.run import configs_dir
from genlab.bench.speed import prepared_model, time_alternating
from genlab.config import load_config
from genlab.core.hardware import cpu_info, resolve_precision
from genlab.data.datasets import load_source

#: ``genlab bench``'s cases compared here (label prefixes): the conv-heavy ones and the seed VAE
LAYOUT_CASES = ("VAE, lab-report", "DCGAN", "CycleGAN", "StackGAN Stage-I (emoji 64 px)")
CASES = [case for case in BENCH_CASES if case.label.startswith(LAYOUT_CASES)]


def compare(config: str, overrides: list[str], batch_size: int, block: int, blocks: int,
            compiled: bool = False) -> dict:
    """Images/s of both layouts (alternating blocks of ``block`` steps) and their ratio; ``compiled``:
    both models' networks compiled (``train.compile``) before the warm-up step."""
    base = [*overrides, f"train.batch_size={batch_size}"]
    cfgs = {layout: load_config(configs_dir() / config, [*base, f"train.channels_last={layout == 'channels_last'}"])
            for layout in ("channels_last", "contiguous")}
    family = registry.get(cfgs["contiguous"].model.family)
    data = load_source(cfgs["contiguous"].data, "train", family.data_kind)
    steps = {}
    for layout, cfg in cfgs.items():
        model, steps[layout] = prepared_model(cfg, data)
        if compiled:
            model.compile_networks()
    indices = [torch.randint(0, len(data), (batch_size,), generator=torch.Generator().manual_seed(i))
               for i in range(block)]
    for step in steps.values():  # warm-up
        step(indices[0], {})

    def steps_of(step):
        return lambda: [step(index, {}) for index in indices]

    seconds = time_alternating({layout: steps_of(step) for layout, step in steps.items()}, blocks)
    images = blocks * block * batch_size
    rates = {layout: images / sum(s) for layout, s in seconds.items()}
    return {**rates, "ratio": rates["contiguous"] / rates["channels_last"],
            "precision": resolve_precision(cfgs["contiguous"].train.precision, torch.device("cpu"))[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="per step, every case (CycleGAN uses 4)")
    parser.add_argument("--block", type=int, default=2, help="steps per block")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks per layout")
    parser.add_argument("--only", action="append", help="only cases whose label contains this text")
    parser.add_argument("--compile", action="store_true", help="compile both models' networks (train.compile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_info().describe()}; {args.threads} thread(s){'; compiled' if args.compile else ''}\n")
    print("| case | batch | precision | channels-last img/s | contiguous img/s | contiguous / channels-last |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        if args.only and not any(text in case.label for text in args.only):
            continue
        batch = 4 if case.config.startswith("cyclegan") else args.batch_size
        r = compare(case.config, list(case.overrides), batch, args.block, args.blocks, args.compile)
        print(f"| {case.label} | {batch} | {r['precision']} | {r['channels_last']:.1f} | {r['contiguous']:.1f} | "
              f"{r['ratio']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
