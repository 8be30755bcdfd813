"""Train-step speed of one config: genlab's step beside a plain fp32 eager PyTorch loop of the same networks.

Both loops train the same architecture on the same batches in the same process; blocks of steps
alternate between them so machine noise hits both alike. The plain loops are the textbook steps in
:mod:`genlab.bench.plain`; genlab's step includes drawing the batch from its data source and runs
in the precision ``train.precision`` resolves to on this CPU. ``genlab bench`` runs this for every
family's configs at once.

    python benchmarks/train_speed.py [--config configs/vae-mnist.yaml] [--steps 30] [--threads 2] [key=value ...]

Prints the result and writes benchmarks/results/<config name>_speed.json (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genlab.bench.speed import train_step_speed
from genlab.core.hardware import cpu_info

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "vae-mnist.yaml"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per loop (in blocks of 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides for both loops' networks, e.g. model.preset=lab-report")
    parser.add_argument("--genlab-only", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for genlab's loop only, e.g. train.precision=fp32 train.channels_last=false")
    parser.add_argument("--out", help="JSON file to write (default benchmarks/results/<config name>_speed.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"cpu": cpu_info().describe()} | train_step_speed(
        args.config, args.overrides, steps=args.steps, batch_size=args.batch_size, genlab_only=args.genlab_only)
    print(json.dumps(result, indent=2))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"{Path(args.config).stem}_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
