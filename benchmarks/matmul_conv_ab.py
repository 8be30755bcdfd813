"""genlab's matrix-product convolution forms against PyTorch's layers, layer by layer (the numbers in
the ``genlab.nn.matmul_conv`` docstring).

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/matmul_conv_ab.py [--threads 1]
        [--reps 15] [--batch 32] [--bf16]

For each layer of the DCGANs' that a form computes (:class:`genlab.nn.layers.PaddedConv2d`,
:class:`genlab.nn.matmul_conv.MatmulConvTranspose2d`), channels-last, the input with a gradient as in a
train step: the weight gradient alone (``aten.convolution_backward`` against
:func:`~genlab.nn.matmul_conv.matmul_weight_grad`), then the layer's forward + backward as PyTorch's
layer and as genlab's form. Median milliseconds of ``--reps`` after 3 warm-ups; ``--bf16`` runs under
bf16 autocast (weights and inputs in bf16 for the weight-gradient rows).
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from torch import nn

from genlab.bench.speed import median_ms
from genlab.core.hardware import cpu_info
from genlab.nn.forms import as_pytorch_layers
from genlab.nn.layers import PaddedConv2d
from genlab.nn.matmul_conv import MatmulConvTranspose2d, matmul_weight_grad

CL = torch.channels_last

#: (name, form, layer arguments, input channels and size)
LAYERS = [
    ("Radford G 100 -> 512, 1 -> 4 px", MatmulConvTranspose2d, (100, 512, 4, 1, 0), (100, 1)),
    ("Radford G 512 -> 256, 4 -> 8 px", MatmulConvTranspose2d, (512, 256, 4, 2, 1), (512, 4)),
    ("Radford D 256 -> 512, 8 -> 4 px", PaddedConv2d, (256, 512, 4, 2, 1), (256, 8)),
    ("Radford D 512 -> 1, 4 -> 1 px", PaddedConv2d, (512, 1, 4, 1, 0), (512, 4)),
    ("seed G 512 -> 256 5x5, 6 -> 12 px", MatmulConvTranspose2d, (512, 256, 5, 2, 2, 1), (512, 6)),
    ("seed D 256 -> 512, 12 -> 6 px (128 px images)", PaddedConv2d, (256, 512, 4, 2, 1), (256, 12)),
    ("(not used: 256 weight rows) G 256 -> 128, 8 -> 16 px", MatmulConvTranspose2d, (256, 128, 4, 2, 1), (256, 8)),
]


def row(form: type[nn.Module], layer_args: tuple, channels: int, size: int, batch: int, reps: int, bf16: bool) -> str:
    """The table's cells for one layer (see the module docstring)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    torch.manual_seed(0)
    ours = form(*layer_args, bias=False).to(memory_format=CL)
    theirs = form(*layer_args, bias=False).to(memory_format=CL)
    theirs.load_state_dict(ours.state_dict())
    as_pytorch_layers(theirs)
    latent = size == 1  # z: no input gradient
    x = torch.randn(batch, channels, size, size).to(memory_format=CL).requires_grad_(not latent)
    with autocast():
        y = theirs(x)
    grad = torch.randn(y.shape, dtype=y.dtype).contiguous(memory_format=CL)

    def train(layer: nn.Module) -> None:
        layer.weight.grad = x.grad = None
        with autocast():
            out = layer(x)
        out.backward(grad)

    cells = ["–", "–", "–"]
    if ours.weight.shape[0] >= 256 and not latent:
        transposed = isinstance(ours, nn.ConvTranspose2d)
        xw, w = x.detach().to(dtype), ours.weight.detach().to(dtype)
        padding, stride = ours.padding, ours.stride
        output_padding = ours.output_padding if transposed else (0, 0)
        onednn = median_ms(lambda: torch.ops.aten.convolution_backward(
            grad, xw, w, None, stride, padding, (1, 1), transposed, output_padding, 1, (False, True, False)), reps)
        product = median_ms(lambda: matmul_weight_grad(grad, xw, w.shape, stride, padding, transposed), reps)
        cells = [f"{onednn:.1f}", f"{product:.1f}", f"{onednn / product:.2f}×"]
    pytorch, genlab = median_ms(lambda: train(theirs), reps), median_ms(lambda: train(ours), reps)
    return " | ".join([*cells, f"{pytorch:.1f}", f"{genlab:.1f}", f"{pytorch / genlab:.2f}×"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bf16", action="store_true", help="under bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_info().describe()}; {args.threads} thread(s); batch {args.batch}; "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}; median ms of {args.reps}")
    print("| layer | weight grad: oneDNN | product | × | forward + backward: PyTorch's layer | genlab's form | × |")
    print("|---|---|---|---|---|---|---|")
    for name, form, layer_args, (channels, size) in LAYERS:
        print(f"| {name} | {row(form, layer_args, channels, size, args.batch, args.reps, args.bf16)} |")


if __name__ == "__main__":
    main()
