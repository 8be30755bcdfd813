"""Where a train step's time goes: ``torch.profiler`` over a few genlab train steps of one config.

    python benchmarks/profile_step.py CONFIG [key=value ...] [--steps 3] [--threads 1]
        [--compile [--kernel-names] | --plain] [--conv-shapes] [--op-shapes OP]

The process keeps freed memory as ``genlab train`` does (``train.reuse_freed_memory``; profiles
taken before 2026-12-05's change to this script include the page faults of glibc's default).
Prints seconds per step and the operators by self CPU time (BENCHMARKS.md, "Speed on the CPU");
``--compile`` profiles the step with ``train.compile=true`` (compiled during the warm-up steps;
without it the eager step, also of a config that compiles by default),
``--conv-shapes`` adds the convolutions' forward and backward time per input shape, ``--op-shapes OP``
any operator's time per input shape (``aten::copy_`` found the weight-gradient layout copies), and
``--kernel-names`` (with ``--compile``) names inductor's fused kernels (``cpp_fused_…``), which is how
the compiled steps' slow backward kernels were found (BENCHMARKS.md, CycleGAN speed).

``--plain`` profiles the plain fp32 eager step that ``genlab bench`` times genlab against instead (the
same networks with PyTorch's own layers, contiguous, pre-built batches, the C library's own allocator
behaviour). Both modes end with the convolutions' share of the step (every ``aten::*conv*`` operator's
self time). Dividing the plain step's seconds by genlab's convolution seconds gives the most genlab's
step could gain over the plain one without faster convolutions: its bound if everything else took no
time (BENCHMARKS.md, "What bounds the AVX2 ratios").
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from genlab import registry
from genlab.bench.speed import plain_batch, prepared_model, prepared_plain_step
from genlab.config import load_config
from genlab.core.allocator import keep_freed_memory_if
from genlab.core.hardware import cpu_info, resolve_precision
from genlab.core.noise import SharedNoise
from genlab.data.datasets import load_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.precision=fp32 train.batch_size=64")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="profile the train.compile=true step")
    parser.add_argument("--plain", action="store_true",
                        help="profile genlab bench's plain fp32 eager step of the same networks instead")
    parser.add_argument("--conv-shapes", action="store_true", help="also list convolution time per input shape")
    parser.add_argument("--op-shapes", action="append", default=[], metavar="OP",
                        help="also list OP's time per input shape (e.g. aten::copy_; repeatable)")
    parser.add_argument("--kernel-names", action="store_true",
                        help="with --compile: list inductor's fused C++ kernels by name instead of as one graph")
    args = parser.parse_intermixed_args()  # overrides and options in any order
    torch.set_num_threads(args.threads)
    if args.kernel_names:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # each cpp_fused_* kernel a profiler event
    if args.plain and args.compile:
        parser.error("--plain profiles the eager plain step; it takes no --compile")
    # explicit both ways: the eager step unless --compile, whatever the config says
    cfg = load_config(args.config, [*args.overrides, f"train.compile={str(args.compile).lower()}"])
    data = load_source(cfg.data, "train", registry.get(cfg.model.family).data_kind)
    index = torch.arange(min(cfg.train.batch_size, len(data)))
    if args.plain:  # as genlab bench runs it: the C library's allocator behaviour, batches built beforehand
        plain_step, batch = prepared_plain_step(args.config, args.overrides), plain_batch(data, index, SharedNoise(0))
        if plain_step is None:
            parser.error(f"{cfg.model.family} has no plain step to profile (genlab.bench.plain.PLAIN_STEPS)")

        def step(index, totals):
            plain_step(batch)
    else:
        keep_freed_memory_if(cfg.train.reuse_freed_memory)  # as genlab train does
        model, step = prepared_model(cfg, data)
        if args.compile:
            model.compile_networks()
    for _ in range(2):
        step(index, {})
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.conv_shapes or bool(args.op_shapes)) as prof:
        for _ in range(args.steps):
            step(index, {})
    seconds = (time.perf_counter() - started) / args.steps
    precision = "fp32, the plain step" if args.plain else resolve_precision(cfg.train.precision, torch.device("cpu"))[0]
    print(f"{cpu_info().describe()}; {args.threads} thread(s); {precision}{'; compiled' if args.compile else ''}; "
          f"batch {len(index)}: {seconds:.3f} s per step (profiler on)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    conv = convolution_seconds(prof) / args.steps
    print(f"convolutions: {conv:.3f} s per step, {conv / seconds:.0%} of the step")
    if args.conv_shapes:
        print_conv_shapes(prof, args.steps)
    for op in args.op_shapes:
        print_op_shapes(prof, args.steps, op, args.rows)


def convolution_seconds(prof) -> float:
    """Self CPU seconds of every ATen convolution operator (forward, transposed, backward) in ``prof``."""
    return sum(e.self_cpu_time_total for e in prof.key_averages()
               if e.key.startswith("aten::") and "conv" in e.key) / 1e6


def print_conv_shapes(prof, steps: int) -> None:
    """Forward and backward convolution time per step for each input shape (x, weight), slowest first."""
    kinds = {"aten::mkldnn_convolution": "forward", "aten::convolution_backward": "backward"}
    rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in kinds]
    print("| pass | input | weight | ms per step | calls per step |\n|---|---|---|---|---|")
    for e in sorted(rows, key=lambda e: -e.self_cpu_time_total):
        shapes = e.input_shapes
        x, w = (shapes[0], shapes[1]) if e.key == "aten::mkldnn_convolution" else (shapes[1], shapes[2])
        print(f"| {kinds[e.key]} | {x} | {w} | {e.self_cpu_time_total / 1e3 / steps:.1f} | {e.count / steps:g} |")


def print_op_shapes(prof, steps: int, op: str, rows: int) -> None:
    """Self time per step of operator ``op`` for each combination of input shapes, slowest ``rows`` first."""
    events = sorted((e for e in prof.key_averages(group_by_input_shape=True) if e.key == op),
                    key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / steps
    print(f"\n{op}: {total:.1f} ms per step in all\n\n| input shapes | ms per step | calls per step |\n|---|---|---|")
    for e in events[:rows]:
        print(f"| {e.input_shapes} | {e.self_cpu_time_total / 1e3 / steps:.1f} | {e.count / steps:g} |")


if __name__ == "__main__":
    main()
