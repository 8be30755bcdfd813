"""The FID and KID of real images against real images: the floor a generator's scores sit above.

``genlab eval`` scores a GAN's samples against a config's training images (TF-Inception features,
cached). This script draws disjoint random subsets of those same real images and scores one against
the other with the same metric code, so a generator's FID can be read against what a perfect
generator would get with the same number of samples: for each seed, ``n`` real images against the
remaining ``N - n``, for each ``n`` asked for.

    python benchmarks/fid_floor.py configs/dcgan-emoji.yaml [--sizes 1000 1808] [--seeds 0 1 2] [override ...]

Computing the features takes ~1 min per 500 images per core the first time; they are cached (the
same file ``genlab eval`` uses), after which the script takes seconds per row.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from genlab.config import load_config
from genlab.eval.features import InceptionFeatures
from genlab.eval.gan_metrics import fid_kid, real_features


def floor_rows(features: torch.Tensor, sizes: list[int], seeds: list[int]) -> list[dict]:
    """One row per ``n`` in ``sizes``: FID/KID of ``n`` random rows of ``features`` ``(N, D)`` against
    the other ``N - n``, for each seed; ``fid``/``kid`` lists in seed order."""
    rows = []
    for n in sizes:
        if not 2 <= n <= len(features) - 2:
            raise SystemExit(f"--sizes: {n} is not in [2, {len(features) - 2}] for {len(features)} real images")
        fids, kids = [], []
        for seed in seeds:
            order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
            scores = fid_kid(features[order[n:]], features[order[:n]])
            fids.append(scores["fid"])
            kids.append(scores["kid"])
        rows.append({"n": n, "rest": len(features) - n, "fid": fids, "kid": kids})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a GAN config; its data section names the real images")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.image_size=96")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000], help="subset sizes n (default: 1000 and N/2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one random split per seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config, args.overrides)
    features = real_features(config, "train", InceptionFeatures())
    sizes = sorted({*args.sizes, len(features) // 2})
    print(f"{config.data.name} train, {len(features)} images at {config.data.image_size} px, "
          f"TF-Inception pool3; seeds {args.seeds}")
    print("| real images scored | against real images | FID (per seed) | FID mean | KID mean |")
    print("|---|---|---|---|---|")
    for row in floor_rows(features, sizes, args.seeds):
        print(f"| {row['n']} | {row['rest']} | {' / '.join(f'{f:.1f}' for f in row['fid'])} | "
              f"{statistics.mean(row['fid']):.1f} | {statistics.mean(row['kid']):.4f} |")


if __name__ == "__main__":
    main()
