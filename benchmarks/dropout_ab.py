"""Dropout's keep-mask draws and layers, timed (the ``genlab.nn.dropout`` docstring's numbers).

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/dropout_ab.py [--threads 1] [--reps 51]

For a channels-last fp32 map (the VAE's second dropout, (32, 64, 14, 14), by default): the mask's
draw as ``bernoulli_`` (``native_dropout``'s), as ``rand_like(x) >= p`` (genlab's draw before
2026-12-05) and as 16-bit slices of 64-bit words (:func:`genlab.nn.dropout._keep_mask`); then
forward + backward of ``nn.Dropout``, of :class:`genlab.nn.dropout.Dropout` with the ``rand_like``
mask and with its own. Median milliseconds
of ``--reps`` after 5 warm-ups.
"""

from __future__ import annotations

import argparse

import torch

from genlab.bench.speed import median_ms
from genlab.core.hardware import cpu_info
from genlab.nn.dropout import Dropout, _keep_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=51)
    parser.add_argument("--shape", type=int, nargs=4, default=[32, 64, 14, 14], metavar=("N", "C", "H", "W"))
    parser.add_argument("-p", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.shape).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(x)
    leaf = x.clone().requires_grad_()

    def before(x):  # genlab's Dropout until 2026-12-05
        return x * (torch.rand_like(x) >= args.p).to(x.dtype).mul_(1 / (1 - args.p))

    rows = {
        "mask: bernoulli_(1 − p)": lambda: torch.empty_like(x).bernoulli_(1 - args.p),
        "mask: rand_like(x) >= p": lambda: torch.rand_like(x) >= args.p,
        "mask: 16-bit slices of 64-bit words": lambda: _keep_mask(x, args.p),
        "nn.Dropout forward + backward": lambda: torch.nn.Dropout(args.p)(leaf).backward(grad),
        "the same with the rand_like mask (before)": lambda: before(leaf).backward(grad),
        "genlab Dropout forward + backward": lambda: Dropout(args.p)(leaf).backward(grad),
    }
    print(f"{cpu_info().describe()}; {args.threads} thread(s); channels-last fp32 {tuple(args.shape)}, p = {args.p}\n")
    print("| what | ms |\n|---|---|")
    for name, fn in rows.items():
        print(f"| {name} | {median_ms(fn, args.reps, warmups=5):.2f} |")


if __name__ == "__main__":
    main()
