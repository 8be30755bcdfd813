"""How much of a TF-Inception FID on MNIST comes from faint background noise?

Real MNIST digits have exactly black backgrounds; GAN samples often carry faint speckle there
(grey levels 1-12 of 255, invisible on screen). This script scores real *training* digits against
the test split twice with the same TF-Inception features genlab's metrics use: as they are, and
with such speckle added to a share of their black pixels. For any GAN runs given it reports the
share of faint pixels (1..12) in their samples, the quantity to compare, and the FID of those
samples as they are (quantised to 8 bits, as ``genlab eval`` does) and with their faint pixels set to black: a diagnosis of where the distance
comes from, not a way to report a better number.

    python benchmarks/inception_background.py [--n 2000] [--share 0.4] [--level 12] [--runs RUN_DIR ...]

Writes benchmarks/results/inception_background.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genlab.config import load_config
from genlab.data.datasets import load_split
from genlab.eval.features import InceptionFeatures, extract_features
from genlab.eval.gan_metrics import fid_kid, quantise_8bit, real_features
from genlab.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
FAINT = (1, 12)  # grey levels (of 255) that count as faint


def faint_share(images: torch.Tensor) -> float:
    """Share of pixels with grey level in FAINT, for 8-bit images ``(N, C, H, W)`` in [0, 1]."""
    levels = (images * 255).round()
    return float(((levels >= FAINT[0]) & (levels <= FAINT[1])).float().mean())


def add_speckle(images: torch.Tensor, share: float, level: int, generator: torch.Generator) -> torch.Tensor:
    """8-bit ``images`` in [0, 1] with a uniform grey level in [0, level/255] on ``share`` of their black pixels."""
    noise = torch.rand(images.shape, generator=generator) * level / 255
    where = (torch.rand(images.shape, generator=generator) < share) & (images == 0)
    return quantise_8bit(torch.where(where, noise, images))


def zero_faint(images: torch.Tensor) -> torch.Tensor:
    """8-bit ``images`` in [0, 1] with every pixel of grey level FAINT[1] or darker set to 0."""
    return torch.where(images * 255 < FAINT[1] + 0.5, torch.zeros_like(images), images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="training digits scored (default 2000)")
    parser.add_argument("--share", type=float, default=0.4, help="share of black pixels that get speckle")
    parser.add_argument("--level", type=int, default=12, help="brightest speckle grey level (of 255)")
    parser.add_argument("--runs", nargs="*", default=[],
                        help="GAN run directories whose samples to score, as generated and with faint pixels blackened")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = load_config(ROOT / "configs" / "dcgan-mnist.yaml")  # MNIST at 32x32, as the DCGAN sees it
    extractor = InceptionFeatures()
    reference = real_features(config, "test", extractor)
    digits = load_split(config.data, "train").images[: args.n].float() / 255
    speckled = add_speckle(digits, args.share, args.level, torch.Generator().manual_seed(0))
    result = {"n": args.n, "share": args.share, "level": args.level, "reference": "mnist/test (10,000)", "rows": []}

    def score(name: str, images: torch.Tensor) -> None:
        fid = fid_kid(reference, extract_features(extractor, images, progress=True, desc=name))["fid"]
        share = faint_share(images)
        result["rows"].append({"images": name, "faint_share": share, "fid_inception": fid})
        print(f"{name}: faint share {share:.3f}, Inception FID {fid:.2f}", flush=True)

    score("real training digits", digits)
    score("the same with speckle", speckled)
    for run in args.runs:
        _, model, state = load_run(Path(run))
        samples = quantise_8bit(model.sample(args.n, generator=torch.Generator().manual_seed(0)).float())
        name = f"samples of {run} (epoch {state['loop']['epoch']})"
        score(name, samples)
        score(f"{name}, faint pixels set to black", zero_faint(samples))
    out = ROOT / "benchmarks" / "results" / "inception_background.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
