"""Winograd F(4×4, 3×3) against oneDNN's direct convolution, layer by layer (BENCHMARKS.md, "What
bounds the AVX2 ratios"; the thresholds of ``PaddedConv2d.winograd_min_channels`` / ``_pixels``).

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/winograd_ab.py [--threads 1] [--reps 15]
        [--shape BATCH IN OUT SIZE ...]

For each (batch, input → output channels, output size) — the ResNet CycleGAN generator's residual
layer at its batches of 4 and 8 (and at the paper's 256 px, ngf 64, batch 1), the resize-convolution up-blocks (the U-Net recipe's 256 → 64 at
16×16), a U-Net's small maps — forward +
backward of a 3×3 stride-1 convolution of a channels-last fp32 map, as ``nn.Conv2d`` and as
:func:`genlab.nn.winograd.winograd_conv3x3` (with its weight's transform computed in each call, and
reused as :func:`genlab.nn.layers.reuse_winograd_weights` does in a train step), median of
``--reps`` after 3 warm-ups (``--shape``, repeatable, times other layers instead); and the largest
difference of the output and of the input and weight gradients, relative to the largest value.
"""

from __future__ import annotations

import argparse

import torch

from genlab.bench.speed import median_ms
from genlab.core.hardware import cpu_info
from genlab.nn.winograd import winograd_conv3x3, winograd_weight

#: (batch, input channels, output channels, output height = width)
SHAPES = [(4, 128, 128, 16), (8, 128, 128, 16), (16, 128, 128, 16), (2, 128, 128, 16), (1, 128, 128, 16),
          (32, 128, 128, 8), (1, 256, 256, 64),
          (4, 128, 64, 32), (8, 128, 64, 32), (4, 64, 64, 32), (4, 64, 32, 64), (4, 256, 64, 16), (8, 256, 64, 16),
          (8, 256, 128, 8), (8, 256, 256, 8), (8, 512, 256, 4)]



def compare(batch: int, c_in: int, c_out: int, size: int, reps: int) -> str:
    """One table row: both methods' forward + backward time and the Winograd form's relative errors."""
    cl = torch.channels_last
    conv = torch.nn.Conv2d(c_in, c_out, 3).to(memory_format=cl)
    x = torch.randn(batch, c_in, size + 2, size + 2).to(memory_format=cl).requires_grad_()
    grad = torch.randn(batch, c_out, size, size).contiguous(memory_format=cl)
    inputs = (x, conv.weight, conv.bias)
    expected = conv(x)
    expected_grads = torch.autograd.grad(expected, inputs, grad)
    out = winograd_conv3x3(*inputs)
    grads = torch.autograd.grad(out, inputs, grad)
    errors = [float((a - b).detach().abs().max() / b.detach().abs().max())
              for a, b in zip((out, *grads[:2]), (expected, *expected_grads[:2]))]
    direct = median_ms(lambda: conv(x).backward(grad), reps)
    winograd = median_ms(lambda: winograd_conv3x3(*inputs).backward(grad), reps)
    transformed = winograd_weight(conv.weight)  # as in a train step: once per optimizer step, not per call
    reused = median_ms(lambda: winograd_conv3x3(*inputs, transformed).backward(grad), reps)
    return (f"| {batch} | {c_in} → {c_out} | {size}×{size} | {batch * size * size:,} | {direct:.2f} | {winograd:.2f} | "
            f"**{direct / winograd:.2f}×** | {reused:.2f} | **{direct / reused:.2f}×** | "
            f"{errors[0]:.0e} / {errors[1]:.0e} / {errors[2]:.0e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=15, help="timed forward + backward passes per method and shape")
    parser.add_argument("--shape", type=int, nargs=4, action="append", metavar=("BATCH", "IN", "OUT", "SIZE"),
                        help="time this layer instead of the built-in list (repeatable); SIZE: output height = width, "
                             "a multiple of 4")
    args = parser.parse_args()
    if any(size % 4 for *_, size in args.shape or []):
        parser.error(f"--shape: SIZE must be a multiple of 4 (the form's 4×4 output blocks); got {args.shape}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{cpu_info().describe()}; {args.threads} thread(s); fp32, channels-last\n")
    print("| batch | channels | output | output pixels | nn.Conv2d ms | Winograd ms | × | the same, weight transform "
          "reused, ms | × | relative error: output / input grad / weight grad |\n|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shape or SHAPES:
        print(compare(*shape, args.reps), flush=True)


if __name__ == "__main__":
    main()
