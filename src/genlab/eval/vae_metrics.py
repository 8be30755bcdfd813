"""``genlab eval`` for the VAE family: ELBO, importance-sampled NLL and evaluator accuracies.

Protocol (standard for MNIST likelihoods): test images dynamically binarised once with a fixed
seed; ELBO on all test images with one posterior sample; NLL as the IWAE bound with
``eval.iw_samples`` samples on the first ``eval.nll_images`` test images (mean ± standard error).
Because the NLL subset is small, the mean over it varies with which digits it holds (± 3 nats on
200 images); ``test/nll_full_estimate`` removes most of that: the −ELBO of all test images plus the
subset's mean gap NLL − (−ELBO), a control variate whose per-image spread is a few nats, not ~50.
The evaluator classifier (:mod:`genlab.eval.classifier`) scores reconstructions (share keeping
their true label) and, for a CVAE, class-conditioned samples (conditional accuracy).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from genlab.data.datasets import load_split
from genlab.data.sources import ImageTensors, iterate_eval_batches, make_batch
from genlab.errors import DataError
from genlab.eval.likelihood import elbo_terms, importance_sampled_log_likelihood, mean_and_stderr, progress
from genlab.schema import Config

METRIC_SEED = 4321


def _binarised_test_set(config: Config, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Test images as the model sees them (binarised once with a fixed seed if the config binarises)."""
    test = load_split(config.data, "test")
    if test is None:
        raise DataError(f"dataset {config.data.name!r} has no test split to evaluate on")
    if limit is not None:
        test = ImageTensors(test.images[:limit], None if test.labels is None else test.labels[:limit])
    generator = torch.Generator().manual_seed(METRIC_SEED)
    batch = make_batch(test, torch.arange(len(test)), config.data, torch.device("cpu"), generator)
    return batch["image"], batch.get("label")


@torch.no_grad()
def evaluate_vae(model, config: Config) -> dict[str, Any]:
    """All VAE/CVAE metrics as a flat dict (nats per image; accuracies as fractions)."""
    ev = config.eval
    x, y = _binarised_test_set(config)
    generator = torch.Generator().manual_seed(METRIC_SEED + 1)
    recon, kl = torch.zeros(len(x), dtype=torch.float64), torch.zeros(len(x), dtype=torch.float64)
    for index in iterate_eval_batches(ImageTensors(x, y), ev.batch_size):
        terms = elbo_terms(model, x[index], None if y is None else y[index], generator)
        recon[index], kl[index] = terms["recon"].double(), terms["kl"].double()
    neg_elbo = recon + kl
    n = len(x)
    out: dict[str, Any] = {"test/recon": float(recon.mean()), "test/kl": float(kl.mean()),
                           "test/neg_elbo": float(neg_elbo.mean()), "test/elbo_images": n}
    m = len(x) if ev.nll_images is None else min(ev.nll_images, len(x))
    started = time.perf_counter()
    nll = []
    batches = list(torch.arange(m).split(max(1, min(ev.batch_size, 100))))
    for index in progress(batches, len(batches), f"NLL (k={ev.iw_samples})"):
        nll.append(-importance_sampled_log_likelihood(model, x[index], None if y is None else y[index],
                                                      ev.iw_samples, generator))
    nll = torch.cat(nll)
    mean, stderr = mean_and_stderr(nll)
    gap, gap_stderr = mean_and_stderr(nll - neg_elbo[:m])
    elbo_stderr = mean_and_stderr(neg_elbo)[1]  # conservative: treats the test set as a sample of digits
    out |= {"test/nll": mean, "test/nll_stderr": stderr, "test/nll_images": m, "test/nll_iw_samples": ev.iw_samples,
            "test/nll_full_estimate": float(neg_elbo.mean()) + gap,
            "test/nll_full_estimate_stderr": (gap_stderr ** 2 + elbo_stderr ** 2) ** 0.5,
            "time/nll_s": time.perf_counter() - started}
    if config.data.name in ("mnist", "fashion-mnist") and y is not None and config.data.image_size == 28:
        out |= _evaluator_scores(model, config, x, y)
    return out


@torch.no_grad()
def _evaluator_scores(model, config: Config, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    from genlab.eval.classifier import load_evaluator

    dataset = config.data.name
    try:
        classifier = load_evaluator(dataset=dataset)
    except Exception as exc:  # no evaluator shipped for this dataset: say so in the results
        return {"evaluator": f"unavailable: {exc}"}
    kept = 0
    for index in iterate_eval_batches(ImageTensors(x, y), config.eval.batch_size):
        labels = None if not model.num_classes else y[index]
        mu, _ = model.encode(x[index], labels)
        recon = torch.sigmoid(model.decode(mu, labels)).float()
        kept += int((classifier.predict(recon) == y[index]).sum())
    out: dict[str, Any] = {"evaluator": dataset, "recon_label_kept": kept / len(x)}
    if model.num_classes:
        n = config.eval.num_samples
        wanted = torch.arange(n) % model.num_classes
        generator = torch.Generator().manual_seed(METRIC_SEED + 2)
        correct = 0
        for index in torch.arange(n).split(config.eval.batch_size):
            samples = model.sample(len(index), cond=wanted[index], generator=generator).float()
            correct += int((classifier.predict(samples) == wanted[index]).sum())
        out |= {"conditional_accuracy": correct / n, "conditional_samples": n}
    return out
