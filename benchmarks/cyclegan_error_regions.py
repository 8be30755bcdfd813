"""Where a CycleGAN run's paired error against the true translations comes from, by region.

For each test image (domains aligned, e.g. the emoji styles) the absolute error of the translation
G(a) against the true counterpart b is compared with the error of the untranslated input a, pixel
by pixel, and the difference (translation − input; > 0: the translation is worse there) is summed
over three disjoint regions:

* ``outline_true``: pixels that are dark in the target (luminance < 0.25: OpenMoji's outlines);
* ``outline_drawn``: pixels dark in the translation but not in the target (outlines drawn elsewhere);
* ``rest``: everything else (fills, background, colour shifts).

Also the outline precision (dark pixels of the translation that are dark in the target) and recall
(dark pixels of the target that are dark in the translation), and how sensitive the paired L1 is to placement: the L1 between each target and the same
target shifted by one pixel, beside the input's L1; and the same numbers for an *edge oracle*: the
input with every pixel on one of its own edges (luminance range over a 3×3 window > 0.3) painted
black — what a translation that keeps the input's shapes and outlines them perfectly would draw.
One thread, a few seconds:

    python benchmarks/cyclegan_error_regions.py runs/cyclegan64c/unet-6ep [--direction AtoB] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.data.datasets import load_source
from genlab.data.transforms import luma
from genlab.eval.gan_metrics import quantise_8bit
from genlab.runs import load_run

DARK = 0.25  # luminance below which a pixel counts as outline


def edge_outlined(images: torch.Tensor, threshold: float = 0.3, width: int = 3) -> torch.Tensor:
    """``images`` ``(N, 3, H, W)`` in [0, 1] with the pixels on their own edges (luminance range over a
    ``width``×``width`` window above ``threshold``) set to black."""
    lum = luma(images)
    local_range = F.max_pool2d(lum, width, 1, width // 2) + F.max_pool2d(-lum, width, 1, width // 2)
    return torch.where(local_range > threshold, torch.zeros_like(images), images)


def error_regions(source: torch.Tensor, translated: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean per-image L1 of ``translated`` and ``source`` against ``target`` (all ``(N, 3, H, W)`` in
    [0, 1]) and the translation-minus-input L1 split over the regions of the module docstring."""
    err_t = (translated - target).abs().mean(1)  # (N, H, W), mean over channels as the paired L1
    err_s = (source - target).abs().mean(1)
    diff = err_t - err_s
    pixels = diff[0].numel()
    dark_true, dark_drawn = luma(target)[:, 0] < DARK, luma(translated)[:, 0] < DARK
    regions = {"outline_true": dark_true, "outline_drawn": dark_drawn & ~dark_true, "rest": ~(dark_true | dark_drawn)}
    out = {"l1_translated": float(err_t.flatten(1).mean(1).mean()), "l1_input": float(err_s.flatten(1).mean(1).mean())}
    for name, mask in regions.items():
        out[f"worse_{name}"] = float((diff * mask).flatten(1).sum(1).mean() / pixels)
        out[f"share_{name}"] = float(mask.float().mean())
    both = (dark_true & dark_drawn).float().sum()
    out["outline_precision"] = float(both / dark_drawn.float().sum().clamp_min(1))  # drawn dark pixels on a true outline
    out["outline_recall"] = float(both / dark_true.float().sum().clamp_min(1))  # true outline pixels drawn dark
    shifted = torch.roll(target, shifts=1, dims=-1)  # one pixel to the right (the column wrapped is background)
    out["l1_target_shifted_1px"] = float((shifted - target).abs().flatten(1).mean(1).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint file (default: the newest)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, model, _ = load_run(args.run_dir, checkpoint=args.checkpoint)
    test = load_source(config.data, "test", "unpaired")
    a, b = (quantise_8bit(d.images.float() / 255.0) for d in (test.a, test.b))
    source, target = (a, b) if args.direction == "AtoB" else (b, a)
    translated = quantise_8bit(torch.cat([model.translate(x, args.direction) for x in source.split(64)]))
    print(f"{args.run_dir} {args.direction}, {len(source)} test images")
    for name, images in (("translation", translated), ("edge oracle", edge_outlined(source))):
        print(f"{name}:")
        for key, value in error_regions(source, images, target).items():
            print(f"  {key}: {value:.4f}")


if __name__ == "__main__":
    main()
