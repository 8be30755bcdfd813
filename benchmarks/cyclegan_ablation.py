"""CycleGAN on Twemoji ↔ OpenMoji: variants × seeds, scored on the held-out emoji's true counterparts.

Each variant trains ``configs/cyclegan-emoji.yaml`` with the budget below plus its own overrides,
for every seed, then ``genlab eval`` scores it (paired L1 / PSNR / SSIM of each translation against
the same emoji in the other style, the untranslated input as the baseline, cycle L1; FID/KID with
``--inception``). Writes ``results.json`` (every run's metrics) and ``results.md`` (mean ± std over
seeds, with the commands) under ``--out``. ``*_gain`` columns: the paired per-image margin over the
untranslated input (positive = closer to the true counterpart than the input).

    python benchmarks/cyclegan_ablation.py --image-size 32 --limit 1024 --epochs 4 --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "ResNet-6 (paper losses)": [],
    "no identity loss": ["model.lambda_identity=0"],
    "no image pool": ["model.pool_size=0"],
    "U-Net generator": ["model.generator=unet"],
    "resize-conv up-sampling": ["model.upsample=resize"],
}
KEYS = ["l1_AtoB", "l1_AtoB_gain", "ssim_AtoB", "ssim_AtoB_gain", "psnr_AtoB", "l1_BtoA", "l1_BtoA_gain", "ssim_BtoA",
        "ssim_BtoA_gain", "psnr_BtoA", "cycle_l1_AtoB", "cycle_l1_BtoA"]


def run(cmd: list[str]) -> None:
    print("$", shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=1024, help="training pairs (data.limit)")
    parser.add_argument("--epochs", type=int, default=4, help="train.epochs (the last half decays the lr)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--inception", action="store_true", help="also FID/KID (TF-Inception; slow on a CPU)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cyclegan_ablation"))
    parser.add_argument("--rescore", action="store_true", help="do not train: re-run genlab eval on the runs that exist")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    budget = [f"data.image_size={args.image_size}", f"data.limit={args.limit}", f"train.epochs={args.epochs}",
              f"train.num_threads={args.threads}", "train.progress=false", "train.checkpoint_every_steps=0"]
    commands = []
    for variant in args.variants:
        for seed in args.seeds:
            slug = "".join(c if c.isalnum() else "-" for c in variant.lower()).strip("-")
            run_dir = Path("runs") / "cyclegan-ablation" / f"{slug}-s{seed}"  # relative: commands anyone can rerun
            train = [sys.executable, "-m", "genlab", "train", "configs/cyclegan-emoji.yaml", *budget, f"seed={seed}",
                     *VARIANTS[variant], "--run-dir", str(run_dir), "--overwrite", "--no-figures"]
            evaluate = [sys.executable, "-m", "genlab", "eval", str(run_dir), f"eval.inception={str(args.inception).lower()}"]
            if args.rescore and not (ROOT / run_dir / "checkpoints").is_dir():
                continue
            if not args.rescore:
                run(train)
            run(evaluate)
            commands += [shlex.join(train[2:]), shlex.join(evaluate[2:])]
            metrics = json.loads((ROOT / run_dir / "eval.json").read_text())["metrics"]
            results.setdefault(variant, {})[str(seed)] = {k: v for k, v in metrics.items() if k != "protocol"}
            results_path.write_text(json.dumps(results, indent=2) + "\n")
    write_table(results, out / "results.md", commands, args)


def write_table(results: dict, path: Path, commands: list[str], args) -> None:
    def cell(runs: dict, key: str) -> str:
        values = [r[key] for r in runs.values() if key in r]
        if len(values) >= 2:
            return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
        if not values:
            return "–"
        (one,) = [r for r in runs.values() if key in r]  # one seed: ± the standard error over test images
        return f"{values[0]:.4f} ± {one[key + '_se']:.4f}" if key + "_se" in one else f"{values[0]:.4f}"

    keys = KEYS + [k for k in ("fid_AtoB", "fid_BtoA") if any(k in r for v in results.values() for r in v.values())]
    lines = [f"CycleGAN Twemoji ↔ OpenMoji, {args.image_size}×{args.image_size}, {args.limit} training pairs, "
             f"{args.epochs} epochs; mean ± std over seeds (one seed: ± standard error over the test images); "
             "test = held-out emoji (paired with their true counterparts); *_gain: paired margin over the input", "",
             "| variant | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    first = next(iter(next(iter(results.values())).values()), {})
    baseline = [None if k.endswith("_gain") else first.get(k.replace("_AtoB", "_AtoB_input").replace("_BtoA", "_BtoA_input"))
                for k in keys]
    lines.append("| untranslated input | – | " + " | ".join("–" if b is None else f"{b:.4f}" for b in baseline) + " |")
    for variant, runs in results.items():
        row = [cell(runs, k) for k in keys]
        lines.append(f"| {variant} | {len(runs)} | " + " | ".join(row) + " |")
    lines += ["", "Commands (from the repository root):", "", "```", *commands, "```", ""]
    path.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
