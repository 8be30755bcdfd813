"""Does a layer form pay? The train step with and without genlab's forms, one process.

    python benchmarks/compile_forms_ab.py configs/cyclegan-emoji.yaml [key=value ...]
        [--without all|polyphase|resize-conv|matmul|leaky-relu|dropout|contiguous-norm|winograd|weight-grad|one-pixel]
        [--eager] [--threads 1]
        [--blocks 8] [--block-steps 5]

Two copies of the config's model (same seed), both compiled (``train.compile=true``; ``--eager``:
neither, for the forms that act in eager runs too): one as genlab builds it, one with its layer
forms turned back into PyTorch's own layers (:func:`genlab.nn.forms.as_pytorch_layers`:
:class:`~genlab.nn.layers.PaddedConv2d` → ``nn.Conv2d``, :class:`~genlab.nn.layers.NearestUpsample2x`
→ ``nn.Upsample``, :class:`~genlab.nn.layers.NearestResizeConv` → ``nn.Sequential``,
:class:`~genlab.nn.activations.LeakyReLU` → ``nn.LeakyReLU``, :class:`~genlab.nn.dropout.Dropout` →
``nn.Dropout``; the same parameters and values), or with only the polyphase form of thin
convolutions (``--without polyphase``), only the resize-convolution up-blocks (``--without
resize-conv``), only the matrix-product form of convolutions with few output pixels (``--without
matmul``), only the leaky ReLU that saves its output (``--without leaky-relu``) or only the dropout
that draws its mask from uniforms (``--without dropout``), only the instance norm's contiguous
statistics for channels-last maps (``--without contiguous-norm``) or only the Winograd form of 3×3
convolutions (``--without winograd``) or only the matrix-product weight gradients of layers with many
output rows (``--without weight-grad``, :mod:`genlab.nn.matmul_conv`) or only the linear form of
transposed convolutions of a 1×1 input (``--without one-pixel``) turned off; the last five act in eager
steps (the Winograd form and the linear form in compiled ones too, the weight gradients only in eager
ones; the matrix-product form of convolutions with few output pixels in both).
Their train steps on the same batch are timed in alternating blocks, so other load on the machine
hits both alike, with freed memory kept as ``genlab train`` keeps it (``train.reuse_freed_memory``);
prints seconds per step and the ratio (docs/architecture.md, "compile-time form"; BENCHMARKS.md,
CycleGAN speed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from torch import nn

from genlab import registry
from genlab.bench.speed import prepared_model, time_alternating
from genlab.config import load_config
from genlab.core.allocator import keep_freed_memory_if
from genlab.core.hardware import cpu_info
from genlab.data.datasets import load_source
from genlab.nn.activations import LeakyReLU
from genlab.nn.dropout import Dropout
from genlab.nn.forms import as_pytorch_layers
from genlab.nn.layers import InstanceNorm, NearestResizeConv, PaddedConv2d
from genlab.nn.matmul_conv import MatmulConvTranspose2d


def without_polyphase(model: nn.Module) -> int:
    """Turn off :func:`~genlab.nn.layers.polyphase_conv2d` in every ``PaddedConv2d`` of ``model``; returns how many."""
    thin = [m for m in model.modules() if isinstance(m, PaddedConv2d) and m._thin_output()]
    for module in thin:
        module._thin_output = lambda: False  # an instance attribute shadows the method
    return len(thin)


def with_setting(model: nn.Module, kind: type[nn.Module] | tuple[type[nn.Module], ...], attribute: str, value) -> int:
    """Set ``attribute`` to ``value`` on every ``kind`` module of ``model``, as an instance attribute that
    shadows the class's switch (``PaddedConv2d.matmul_max_rows`` / ``.winograd``,
    ``InstanceNorm.contiguous_statistics``, ``.matmul_weight_grad``, ``.one_pixel_linear``); returns how many."""
    modules = [m for m in model.modules() if isinstance(m, kind)]
    for module in modules:
        setattr(module, attribute, value)
    return len(modules)


#: --without choice → (the baseline model's name, what turns its forms off, what the count is of)
WITHOUT = {
    "all": ("pytorch layers", as_pytorch_layers, "layers turned back into PyTorch's"),
    "polyphase": ("no polyphase", without_polyphase, "layers without their polyphase form"),
    "resize-conv": ("no resize-conv", partial(as_pytorch_layers, only=NearestResizeConv),
                    "resize-convolution blocks turned into nn.Sequential"),
    "matmul": ("no matmul", partial(with_setting, kind=PaddedConv2d, attribute="matmul_max_rows", value=0),
               "PaddedConv2d layers without their matrix-product form"),
    "leaky-relu": ("mask leaky relu", partial(as_pytorch_layers, only=LeakyReLU), "leaky ReLUs turned into nn.LeakyReLU"),
    "dropout": ("bernoulli dropout", partial(as_pytorch_layers, only=Dropout), "dropouts turned into nn.Dropout"),
    "contiguous-norm": ("channels-last norm",
                        partial(with_setting, kind=InstanceNorm, attribute="contiguous_statistics", value=False),
                        "instance norms in the map's own layout"),
    "winograd": ("oneDNN 3x3", partial(with_setting, kind=PaddedConv2d, attribute="winograd", value=False),
                 "PaddedConv2d layers without their Winograd form"),
    "weight-grad": ("oneDNN weight grads",
                    partial(with_setting, kind=(PaddedConv2d, MatmulConvTranspose2d), attribute="matmul_weight_grad",
                            value=False),
                    "(transposed) convolutions without their matrix-product weight gradient"),
    "one-pixel": ("oneDNN 1x1-input deconv",
                  partial(with_setting, kind=MatmulConvTranspose2d, attribute="one_pixel_linear", value=False),
                  "transposed convolutions without their linear form for a 1x1 input"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.generator=unet")
    parser.add_argument("--without", choices=tuple(WITHOUT), default="all",
                        help="the forms the second model goes without: all of them, only the polyphase convolution, "
                             "only the resize-convolution up-blocks, only the matrix-product convolutions, "
                             "only the leaky ReLUs that save their output, only the dropouts that draw "
                             "their masks from uniforms, only the instance norms' contiguous statistics, "
                             "only the Winograd 3x3 convolutions, only the matrix-product weight gradients, "
                             "or only the linear form of 1x1-input transposed convolutions")
    parser.add_argument("--eager", action="store_true",
                        help="time eager steps (train.compile=false) instead of compiled ones")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=8, help="timed blocks per model, alternating")
    parser.add_argument("--block-steps", type=int, default=5, help="train steps per block")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [*args.overrides, f"train.compile={str(not args.eager).lower()}"])
    keep_freed_memory_if(cfg.train.reuse_freed_memory)  # as genlab train does
    data = load_source(cfg.data, "train", registry.get(cfg.model.family).data_kind)
    steps = {}
    baseline, turn_off, what = WITHOUT[args.without]
    for name in ("genlab forms", baseline):
        torch.manual_seed(cfg.seed)
        model, step = prepared_model(cfg, data)
        if name == baseline:
            print(f"{turn_off(model)} {what}")
        if not args.eager:
            model.compile_networks()
        steps[name] = step
    index = torch.arange(min(cfg.train.batch_size, len(data)))
    for name, step in steps.items():
        started = time.perf_counter()
        for _ in range(2):
            step(index, {})
        print(f"{name}: first two steps{'' if args.eager else ' (compiling)'} {time.perf_counter() - started:.1f} s")

    def steps_of(step):
        return lambda: [step(index, {}) for _ in range(args.block_steps)]

    block_seconds = time_alternating({name: steps_of(step) for name, step in steps.items()}, args.blocks)
    seconds = {name: [s / args.block_steps for s in values] for name, values in block_seconds.items()}
    print(f"{cpu_info().describe()}; {args.threads} thread(s); batch {len(index)}; "
          f"{args.blocks} blocks of {args.block_steps} steps each")
    for name, values in seconds.items():
        print(f"{name}: median {statistics.median(values):.3f} s per step "
              f"(blocks: {', '.join(f'{v:.3f}' for v in values)})")
    ratio = statistics.median(seconds[baseline]) / statistics.median(seconds["genlab forms"])
    print(f"{baseline} / genlab forms, median step time: {ratio:.3f}")


if __name__ == "__main__":
    main()
