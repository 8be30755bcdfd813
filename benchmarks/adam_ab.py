"""One optimizer step over all of a config's parameters: torch's fused Adam against genlab's DenseAdam
(the ``genlab.models.base.DenseAdam`` docstring's numbers).

    python benchmarks/adam_ab.py [CONFIG] [key=value ...] [--threads 1] [--reps 21]

The parameters are laid out as genlab trains them (4-D weights channels-last, the rest contiguous),
with random gradients in the same layout; both optimizers take three steps first (so their moments
exist), then each step is timed, median milliseconds of ``--reps``. Also checks that both give the
same parameters bit for bit.
"""

from __future__ import annotations

import argparse

import torch

from genlab.bench.speed import median_ms
from genlab.config import load_config
from genlab.core.hardware import cpu_info
from genlab.models.base import DenseAdam
from genlab.registry import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/dcgan-emoji.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    model = build_model(load_config(args.config, args.overrides))
    results = {}
    for name, optimizer_class in [("torch.optim.Adam(fused=True)", torch.optim.Adam), ("DenseAdam", DenseAdam)]:
        torch.manual_seed(0)
        params = [p.detach().clone().to(memory_format=torch.channels_last if p.dim() == 4 else torch.contiguous_format)
                  .requires_grad_() for p in model.parameters()]
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer = optimizer_class(params, lr=2e-4, betas=(0.5, 0.999), fused=True)
        for _ in range(3):
            optimizer.step()
        results[name] = (median_ms(optimizer.step, args.reps), params)
    numel = sum(p.numel() for p in model.parameters())
    print(f"{cpu_info().describe()}; {args.threads} thread(s); {args.config}: {numel:,} parameters")
    for name, (ms, _) in results.items():
        print(f"{name}: {ms:.2f} ms per step")
    (_, ours), (_, theirs) = results["DenseAdam"], results["torch.optim.Adam(fused=True)"]
    print(f"same parameters bit for bit: {all(torch.equal(a, b) for a, b in zip(ours, theirs))}")


if __name__ == "__main__":
    main()
