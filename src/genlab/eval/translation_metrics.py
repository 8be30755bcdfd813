"""Metrics of unpaired translation models (``genlab eval`` of a CycleGAN run).

Protocol (the one CUT and the CycleGAN reference use for FID): translate the whole test split of
each domain and compare with the real test split of the other.

* **FID / KID** (TF-Inception pool3, ``eval.inception=true``): translated test A vs real test B
  (``fid_AtoB``) and B → A; the untranslated inputs against the same targets as the baseline
  (``fid_AtoB_input``): a translation that helps scores lower than its input. The margin
  ``fid_AtoB_gain`` = input FID − translated FID (positive: the translation helps) with a bootstrap
  standard error ``fid_AtoB_gain_se`` over resampled test images (:mod:`genlab.eval.bootstrap`;
  aligned domains resample the emoji, source and target together).
* **Paired errors**, only where the domains are aligned (item i of test A and of test B are the same
  subject, as in the emoji art styles; never for folders): L1 (mean absolute error, [0, 1] pixel
  units), PSNR (dB, data range 1) and SSIM (Gaussian window 11, σ 1.5; Wang et al. 2004) between
  each translation and its true counterpart, mean ± standard error over the test images
  (torchmetrics), and the same for the untranslated input (``*_input``) as the baseline; the
  margin ``*_gain`` (positive: the translation is closer to the truth than its input) is the
  mean ± standard error of the per-image differences, a paired comparison.
* **Cycle reconstruction** L1 of ``F(G(x))`` against ``x``, both directions.
* LPIPS is not reported: the packaged LPIPS (PyPI ``lpips``, torchmetrics) ships only its linear
  heads and downloads the AlexNet/VGG backbone from torchvision at run time, which genlab never does.

All images are quantised to 8 bits (as if saved and reloaded) before any metric.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from genlab.data.datasets import load_source
from genlab.errors import DataError
from genlab.eval.bootstrap import fid_margin_bootstrap
from genlab.eval.features import InceptionFeatures, extract_features
from genlab.eval.gan_metrics import fid_kid, quantise_8bit
from genlab.eval.likelihood import mean_and_stderr
from genlab.schema import Config

log = logging.getLogger("genlab")

#: fewer test images than this per domain: FID and KID come with a warning
FEW_FID_IMAGES = 50
FID_BOOTSTRAP_RESAMPLES = 200  # ~40 ms each for 387 test images; the estimated standard error is within ~5 % (1/sqrt(2·200))

LPIPS_NOTE = ("not reported: no packaged offline LPIPS network (the lpips package and torchmetrics download "
              "their AlexNet/VGG backbone from torchvision)")


def per_image_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L1, PSNR (dB) and SSIM ``(N,)`` of ``pred`` vs ``target`` ``(N, C, H, W)`` in [0, 1]."""
    pred, target = pred.float(), target.float()
    return {"l1": (pred - target).abs().flatten(1).mean(1),
            "psnr": peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
            "ssim": structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")}


def paired_errors(pred: torch.Tensor, target: torch.Tensor) -> dict[str, tuple[float, float]]:
    """:func:`per_image_errors` as ``{name: (mean, standard error)}``."""
    return {name: mean_and_stderr(values) for name, values in per_image_errors(pred, target).items()}


def _translate_all(model, images: torch.Tensor, direction: str, batch_size: int) -> torch.Tensor:
    return torch.cat([model.translate(chunk, direction).cpu() for chunk in images.split(batch_size)])


def evaluate_translation(model, config: Config) -> dict[str, Any]:
    """The metrics above for a translation model (``model.translate(images, direction)``) on
    ``config``'s test split; flat keys plus a ``protocol`` dict."""
    test = load_source(config.data, "test", "unpaired")
    if test is None:
        raise DataError(f"{config.data.root}: no test split (testA/ and testB/) to evaluate on")
    domains = {"A": quantise_8bit(test.a.images.float() / 255.0), "B": quantise_8bit(test.b.images.float() / 255.0)}
    bs = config.eval.batch_size
    metrics: dict[str, Any] = {}
    translated, recon = {}, {}
    for direction, src, dst in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
        other = "BtoA" if direction == "AtoB" else "AtoB"
        translated[direction] = quantise_8bit(_translate_all(model, domains[src], direction, bs))
        recon[direction] = quantise_8bit(_translate_all(model, translated[direction], other, bs))
        metrics[f"cycle_l1_{direction}"] = mean_and_stderr((recon[direction] - domains[src]).abs().flatten(1).mean(1))[0]
        if test.aligned:
            errors = per_image_errors(translated[direction], domains[dst])
            for name, values in errors.items():
                metrics[f"{name}_{direction}"], metrics[f"{name}_{direction}_se"] = mean_and_stderr(values)
            if domains[src].shape[1] == domains[dst].shape[1]:
                for name, values in per_image_errors(domains[src], domains[dst]).items():
                    metrics[f"{name}_{direction}_input"], metrics[f"{name}_{direction}_input_se"] = mean_and_stderr(values)
                    # the margin over the input, image by image (paired: both errors share the image)
                    better = values - errors[name] if name == "l1" else errors[name] - values
                    metrics[f"{name}_{direction}_gain"], metrics[f"{name}_{direction}_gain_se"] = mean_and_stderr(better)
    skipped = {}
    if not test.aligned:
        skipped["paired"] = "not applicable: the test domains are not aligned (no known true translations)"
    if config.eval.inception:
        extractor = InceptionFeatures()
        feats = {k: extract_features(extractor, v, bs, progress=True, desc=f"Inception test {k}")
                 for k, v in domains.items()}
        for direction, src, dst in (("AtoB", "A", "B"), ("BtoA", "B", "A")):
            fake = extract_features(extractor, translated[direction], bs, progress=True, desc=f"Inception {direction}")
            for suffix, f in (("", fake), ("_input", feats[src])):
                scores = fid_kid(feats[dst], f)
                metrics[f"fid_{direction}{suffix}"] = scores["fid"]
                metrics[f"kid_{direction}{suffix}"], metrics[f"kid_{direction}{suffix}_std"] = scores["kid"], scores["kid_std"]
            margin = fid_margin_bootstrap(feats[dst], fake, feats[src], paired=test.aligned,
                                          resamples=FID_BOOTSTRAP_RESAMPLES)
            metrics[f"fid_{direction}_gain"], metrics[f"fid_{direction}_gain_se"] = margin["gain"], margin["gain_se"]
    else:
        skipped["fid"] = "off (set eval.inception=true; about 0.1 s per image per CPU core)"
    metrics["protocol"] = {
        "test_images": {"A": len(test.a), "B": len(test.b)}, "aligned": test.aligned,
        "reference": f"{config.data.name}/test (translated test A vs real test B, and B vs A)",
        "image_size": config.data.image_size, "quantised": "8 bit", "ssim": "gaussian window 11, sigma 1.5",
        "lpips": LPIPS_NOTE, "skipped": skipped,
    }
    if config.eval.inception:
        metrics["protocol"]["fid_gain_se"] = f"bootstrap, {FID_BOOTSTRAP_RESAMPLES} resamples of the test images"
        fewest = min(len(test.a), len(test.b))
        if fewest < FEW_FID_IMAGES:
            log.warning("FID and KID from %d test A and %d test B images: below %d per domain they are mostly "
                        "sampling noise; read them with their bootstrap s.e. (fid_*_gain_se)",
                        len(test.a), len(test.b), FEW_FID_IMAGES)
    return metrics
