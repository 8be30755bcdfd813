"""Does the Winograd form change what a run learns? Train one config with it on or off (BENCHMARKS.md).

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/winograd_quality.py RUN_DIR [--off] CONFIG [key=value ...]

``genlab train CONFIG --run-dir RUN_DIR --overwrite`` with :attr:`genlab.nn.layers.PaddedConv2d.winograd`
on (the default) or ``--off``, then prints the last epoch's metrics line of the run's ``train.log``.
The form acts only in fp32 runs (pass ``train.precision=fp32`` on a bf16-capable CPU). Comparing two
runs of one seed with and without it against two seeds without it tells whether its ~1e-5 relative
differences matter beside seed-to-seed noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genlab.config import load_config
from genlab.nn.layers import PaddedConv2d
from genlab.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.precision=fp32 seed=1")
    parser.add_argument("--off", action="store_true", help="train with every 3x3 layer on oneDNN's direct convolution")
    args = parser.parse_intermixed_args()
    PaddedConv2d.winograd = not args.off
    run_dir = train(load_config(args.config, args.overrides), args.run_dir, overwrite=True)
    epochs = [line for line in (run_dir / "train.log").read_text().splitlines() if " epoch " in line]
    print(f"winograd {'off' if args.off else 'on'}: {epochs[-1] if epochs else '(no epoch finished)'}")


if __name__ == "__main__":
    main()
