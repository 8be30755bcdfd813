"""``genlab eval`` for text-to-image runs (StackGAN): R-precision, FID/KID, precision/recall.

**Captions.** The generated images are drawn for the test split's captions (held-out emoji for
the emoji sets; the training split's if the dataset has no test split, said in the protocol): the
pool of every (image, caption) pair, caption-number major (every image's first caption, then every
image's second, …), cycled until ``eval.num_samples`` images; latent and CA noise from a generator
seeded with :data:`~genlab.eval.gan_metrics.METRIC_SEED`. Generated images are rounded to 8 bits
like the real ones.

**R-precision** (AttnGAN, Xu et al. 2018, §4; DM-GAN, Zhu et al. 2019): for each generated image,
its caption is ranked among 100 (1 true + 99 of other images of the pool) by cosine similarity in
genlab's image–text matching model (:mod:`genlab.eval.text_match`, trained on the real *training*
images only, cached); ``r_precision`` is the top-1 rate, mean ± std over 10 splits. The same score
for the real test image of each caption is the ceiling (``r_precision_real``; the matcher never saw
these images) and for real images paired with another image's caption the floor
(``r_precision_shuffled``, ≈ 1 %). A Stage-II run also reports its Stage-I images
(``r_precision_stage1``).

**FID / KID / precision / recall** of the final images against the real images of
``eval.reference_split`` (default the test split) via
:func:`genlab.eval.gan_metrics.scores_from_features`: TF-Inception pool3 features with
``eval.inception=true`` (keys ``*_inception``), else the matcher's image embedding (keys
``*_matcher``: a dataset-specific evaluator, comparable only between runs of the same data). A
Stage-II run also scores its Stage-I images of the same noise, bilinearly enlarged to the final
size, against the same reference (keys ``*_stage1``, e.g. ``fid_inception_stage1``): the paper's
"Stage-II against Stage-I upsampled" comparison, with everything else held fixed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from genlab.data.captioned import load_captioned_source
from genlab.eval.features import InceptionFeatures, extract_features
from genlab.eval.gan_metrics import METRIC_SEED, PR_K, _feature_info, quantise_8bit, scores_from_features
from genlab.eval.text_match import (
    CANDIDATES,
    SPLITS,
    MatcherImageFeatures,
    MatcherSettings,
    embed_images,
    embed_texts,
    matcher_for,
    r_precision,
)
from genlab.schema import Config

log = logging.getLogger("genlab")


def caption_pool(source) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image index (P,), caption number (P,))`` of every caption of a
    :class:`~genlab.data.sources.CaptionedSource`, caption-number major."""
    counts = source.counts
    images, numbers = [], []
    for number in range(int(counts.max())):
        have = torch.nonzero(counts > number).flatten()
        images.append(have)
        numbers.append(torch.full_like(have, number))
    return torch.cat(images), torch.cat(numbers)


def _r(prefix: str, result: dict[str, float]) -> dict[str, float]:
    return {prefix: result["mean"], f"{prefix}_std": result["std"]}


@torch.no_grad()
def evaluate_stackgan(model, config: Config, *, inception: bool | None = None,
                      matcher_settings: MatcherSettings | None = None, cache_dir: str | Path | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """The metrics of a StackGAN run as a flat dict plus ``protocol`` (see the module docstring).

    ``model.generate(embeddings, generator, stages=True)`` gives ``(stage1 or None, final)`` images
    in [0, 1]. ``matcher_settings`` / ``cache_dir`` override the matching model's settings and
    cache folder (tests use a few epochs).
    """
    data, ev = config.data, config.eval
    if inception is None:
        inception = bool(ev.inception)
    matcher, matcher_meta = matcher_for(config, matcher_settings, cache_dir, progress)
    caption_split = "test"
    source = load_captioned_source(data, "test")
    if source is None:
        caption_split, source = "train", load_captioned_source(data, "train")
        log.warning("%s has no test split: the metrics use the training captions, which the model was trained on, "
                    "so they measure fit, not generalisation to new captions (protocol: captions %s/train)",
                    data.root or data.name, data.name)
    image_of, number_of = caption_pool(source)
    pool = source.embeddings[image_of, number_of]
    text_emb = embed_texts(matcher, pool)
    n = ev.num_samples
    use = torch.arange(n) % len(pool)  # the true caption (pool index) of each generated image
    extractor = InceptionFeatures() if inception else MatcherImageFeatures(matcher, matcher_meta.get("path", ""))

    generator = torch.Generator().manual_seed(METRIC_SEED)
    was_training = model.training
    model.eval()
    final_emb, low_emb, feats, low_feats = [], [], [], []
    try:
        from tqdm.auto import tqdm

        batches = list(use.split(ev.batch_size))
        for index in tqdm(batches, desc="generating", leave=False, disable=not progress or len(batches) < 4):
            low, final = model.generate(pool[index], generator, stages=True)
            final = quantise_8bit(final.float().cpu())
            final_emb.append(embed_images(matcher, final))
            feats.append(extractor(final).float() if inception else final_emb[-1])
            if low is not None:
                low = quantise_8bit(low.float().cpu())
                low_emb.append(embed_images(matcher, low))
                enlarged = torch.nn.functional.interpolate(low, size=final.shape[-2:], mode="bilinear",
                                                           align_corners=False).clamp(0.0, 1.0)
                low_feats.append(extractor(enlarged).float() if inception else embed_images(matcher, enlarged))
    finally:
        model.train(was_training)

    owner = image_of  # the image each pool caption describes
    rgen = torch.Generator().manual_seed(METRIC_SEED + 1)
    out: dict[str, Any] = {}
    out |= _r("r_precision", r_precision(torch.cat(final_emb), text_emb, use, owner, generator=rgen))
    if low_emb:
        out |= _r("r_precision_stage1", r_precision(torch.cat(low_emb), text_emb, use, owner,
                                                    generator=torch.Generator().manual_seed(METRIC_SEED + 1)))
    real_emb = embed_images(matcher, source.data.images)  # (N_images, E)
    out |= _r("r_precision_real", r_precision(real_emb[owner[use]], text_emb, use, owner,
                                              generator=torch.Generator().manual_seed(METRIC_SEED + 1)))
    images = len(source)
    shift = 1 + torch.randint(0, images - 1, (n,), generator=torch.Generator().manual_seed(METRIC_SEED + 2))
    other = (owner[use] + shift) % images  # a real image that is not the caption's
    out |= _r("r_precision_shuffled", r_precision(real_emb[other], text_emb, use, owner,
                                                  generator=torch.Generator().manual_seed(METRIC_SEED + 1)))

    protocol: dict[str, Any] = {
        "num_samples": n, "sample_seed": METRIC_SEED, "sample_quantisation": "8-bit",
        "captions": f"{data.name}/{caption_split}", "caption_pool": len(pool), "caption_images": images,
        "r_precision": {"candidates": CANDIDATES, "splits": SPLITS, "negatives": "captions of other images",
                        "matcher": {k: v for k, v in matcher_meta.items() if k != "format"},
                        "matcher_training": f"{data.name}/train"},
    }
    ref_split = ev.reference_split
    reference = source if ref_split == caption_split else load_captioned_source(data, ref_split)
    fake = torch.cat(feats)
    if reference is None or len(reference) <= PR_K or len(fake) <= PR_K:
        protocol["skipped"] = {extractor.key: f"needs more than {PR_K} real and generated images "
                                              f"(have {0 if reference is None else len(reference)} and {len(fake)})"}
    else:
        real = extract_features(extractor, reference.data.images, ev.batch_size).float()
        scores, settings = scores_from_features(extractor.key, real, fake)
        out |= scores
        if low_feats:
            stage1, _ = scores_from_features(extractor.key, real, torch.cat(low_feats))
            out |= {f"{key}_stage1": value for key, value in stage1.items()}
        protocol |= settings | {"reference": f"{data.name}/{ref_split}", "reference_images": len(real),
                                "features": {extractor.key: _feature_info(extractor)}}
    if not inception:
        protocol.setdefault("skipped", {})["inception"] = "off (set eval.inception=true for TF-Inception FID/KID)"
    out["protocol"] = protocol
    return out
