"""Forward + backward of CycleGAN's networks on two batches of N against one batch of 2N (bf16 autocast).

Why genlab's CycleGAN step joins the inputs that share a network (instance norm is per image, so the
result is the same): this shows what one joined batch saves for each network of a config.

    python benchmarks/cyclegan_batch_join.py [overrides...]    # e.g. model.generator=unet
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from genlab.config import load_config
from genlab.registry import build_model

REPEATS = 5
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cyclegan-emoji.yaml"


def forward_backward(net: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    with torch.autocast("cpu", torch.bfloat16):
        outputs = [net(x) for x in batches]
    sum(out.float().mean() for out in outputs).backward()


def seconds(net: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    forward_backward(net, batches)
    return time.perf_counter() - start


def main(overrides: list[str]) -> None:
    torch.set_num_threads(1)
    cfg = load_config(CONFIG, overrides)
    model = build_model(cfg)
    n, channels, size = cfg.train.batch_size, cfg.data.channels, cfg.data.image_size
    print(f"{cfg.model.generator} / {cfg.model.discriminator}, batch {n}, {size} px, one thread, bf16")
    for name in ("G_A", "D_A"):
        net = model.networks()[name].to(memory_format=torch.channels_last)
        two = [torch.randn(n, channels, size, size).to(memory_format=torch.channels_last) for _ in range(2)]
        one = [torch.cat(two)]
        for _ in range(2):  # warm-up
            forward_backward(net, two)
            forward_backward(net, one)
        t_two = t_one = 0.0
        for _ in range(REPEATS):  # alternating
            t_two += seconds(net, two)
            t_one += seconds(net, one)
        print(f"{name}: two batches of {n} {t_two / REPEATS * 1e3:.1f} ms, one of {2 * n} "
              f"{t_one / REPEATS * 1e3:.1f} ms, ×{t_two / t_one:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
