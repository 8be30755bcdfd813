"""Sample-quality metrics of generators: FID, KID, Inception-Score-style score, precision/recall.

* **FID** — Fréchet distance between Gaussians fitted to real and generated features
  (Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
  equilibrium", eq. 6), computed by torchmetrics' ``FrechetInceptionDistance``.
* **KID** — unbiased squared MMD with the cubic polynomial kernel ``k(x, y) = (x·y / D + 1)^3``,
  mean and standard deviation over random subsets (Bińkowski et al. 2018, "Demystifying MMD
  GANs", §4), computed by torchmetrics' ``KernelInceptionDistance``.
* **IS** — ``exp(E_x KL(p(y|x) || p(y)))`` over ``splits`` consecutive chunks, mean and standard
  deviation (Salimans et al. 2016, "Improved techniques for training GANs", §4), here from the
  logits of genlab's evaluator classifier, not Inception: an "Inception-Score-style" score whose
  maximum is the number of classes (10 for MNIST).
* **Precision / recall** — the share of generated samples inside the real-data manifold and of
  real samples inside the generated manifold, each manifold the union of balls around its points
  with radius = distance to the k-th nearest neighbour, k = 3 (Kynkäänniemi et al. 2019,
  "Improved precision and recall metric for assessing generative models", §2).

All four are computed on the same features (:mod:`genlab.eval.features`): the evaluator's 128-d
penultimate layer and, on request, the 2048-d TF-Inception pool3 (IS only from the evaluator).

**Protocol** (:func:`evaluate_gan`): ``eval.num_samples`` images (default 10,000) drawn with a
fixed seed (:data:`METRIC_SEED`) and quantised to 8 bits like the real images, against the whole
split ``eval.reference_split`` (default the test split; the emoji config uses the training split)
at the model's ``data.image_size``/``data.channels``. Real features are cached per dataset, split,
size and extractor (:func:`real_features`).

**Result keys** (flat; one set per extractor key ``<f>`` = ``evaluator`` | ``inception``):
``fid_<f>``, ``kid_<f>``, ``kid_<f>_std``, ``precision_<f>``, ``recall_<f>``, and
``is_evaluator``, ``is_evaluator_std``; plus ``protocol``, a dict that records for every number
the sample count (``num_samples``), the reference (``reference`` = ``"<dataset>/<split>"`` and
``reference_images``), the features (``features[<f>]``: name, dim, weights version,
description), the KID subsets and subset size, the P/R ``k``, the IS ``splits``, the sampling
seed, and ``skipped[<f>]`` with the reason an extractor was not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from genlab.core.atomic import atomic_write
from genlab.core.atomic import cache_dir as genlab_cache_dir
from genlab.errors import CheckpointError, DataError, GenlabError
from genlab.eval.features import EvaluatorFeatures, InceptionFeatures, extract_features
from genlab.schema import Config, DataConfig

#: seed of the latent noise of the evaluated samples and of KID's subset draws
METRIC_SEED = 4321
KID_SUBSETS = 100  # Bińkowski et al. 2018 and torchmetrics' default
KID_SUBSET_SIZE = 1000
PR_K = 3  # Kynkäänniemi et al. 2019, §2 / Fig. 3: k = 3
IS_SPLITS = 10  # Salimans et al. 2016 (their code: 10 splits of 5,000)
CACHE_FORMAT = "genlab-features-v1"
#: datasets with a shipped (or trainable) evaluator classifier
EVALUATOR_DATASETS = ("mnist", "fashion-mnist")

log = logging.getLogger("genlab")


# --- metrics on precomputed features -------------------------------------------------------------

class _PrecomputedFeatures(nn.Module):
    """Identity "feature extractor": lets torchmetrics' FID/KID take features ``(N, D)`` directly."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # torchmetrics reads this instead of probing with an image

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _check_features(real: torch.Tensor, fake: torch.Tensor, need: int = 2) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D; got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    if len(real) < need or len(fake) < need:
        raise ValueError(f"need at least {need} real and {need} generated feature vectors; got "
                         f"{len(real)} and {len(fake)}")


def frechet_distance(real_feats: torch.Tensor, fake_feats: torch.Tensor, chunk: int = 4096) -> float:
    """FID (Heusel et al. 2017): ``|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))``, squared feature units.

    Features ``(N, D)`` and ``(M, D)``, N, M >= 2; means and unbiased covariances in float64,
    via torchmetrics' ``FrechetInceptionDistance`` fed with the features themselves.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(real_feats, fake_feats)
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real_feats.shape[1]), sync_on_compute=False)
    for feats, real in ((real_feats, True), (fake_feats, False)):
        for part in feats.double().split(chunk):  # bounded memory for the D x D products
            metric.update(part, real=real)
    return float(metric.compute())


def kernel_distance(real_feats: torch.Tensor, fake_feats: torch.Tensor, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = METRIC_SEED) -> tuple[float, float, int]:
    """KID (Bińkowski et al. 2018): unbiased MMD² with kernel ``(x·y/D + 1)^3``, squared-kernel units.

    ``subsets`` random subsets of ``min(subset_size, N, M)`` real and generated features each
    (drawn from a generator seeded with ``seed``; the global RNG is left as it was), via
    torchmetrics' ``KernelInceptionDistance``. Returns ``(mean, std over subsets, subset size used)``.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_features(real_feats, fake_feats)
    size = min(subset_size, len(real_feats), len(fake_feats))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features": that is the point
        metric = KernelInceptionDistance(feature=_PrecomputedFeatures(real_feats.shape[1]), subsets=subsets,
                                         subset_size=size, sync_on_compute=False)
    metric.update(real_feats.double(), real=True)
    metric.update(fake_feats.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws its subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def fid_kid(real_feats: torch.Tensor, fake_feats: torch.Tensor, kid_subsets: int = KID_SUBSETS,
            kid_subset_size: int = KID_SUBSET_SIZE, seed: int = METRIC_SEED) -> dict[str, float | int]:
    """FID and KID of features ``(N, D)`` (real) and ``(M, D)`` (generated), N, M >= 2.

    Returns ``{"fid", "kid", "kid_std", "kid_subsets", "kid_subset_size"}`` (the subset size
    actually used: at most N and M). See :func:`frechet_distance` and :func:`kernel_distance`.
    """
    kid, kid_std, size = kernel_distance(real_feats, fake_feats, kid_subsets, kid_subset_size, seed)
    return {"fid": frechet_distance(real_feats, fake_feats), "kid": kid, "kid_std": kid_std,
            "kid_subsets": kid_subsets, "kid_subset_size": size}


def inception_score_from_logits(logits: torch.Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016) of class logits ``(N, K)``: ``(mean, std)`` over splits.

    The N rows are cut in order into ``splits`` near-equal chunks (as in the authors' code); per
    chunk ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the chunk's mean prediction. Ranges
    from 1 (every sample gets the same prediction) to K (confident and uniformly spread classes).
    """
    if logits.ndim != 2 or not 1 <= splits <= len(logits):
        raise ValueError(f"need logits (N, K) with N >= splits >= 1; got shape {tuple(logits.shape)}, "
                         f"splits={splits}")
    log_p = torch.log_softmax(logits.double(), dim=1)
    scores = []
    for chunk in log_p.tensor_split(splits):
        log_marginal = torch.logsumexp(chunk, dim=0) - torch.log(torch.tensor(float(len(chunk)), dtype=torch.float64))
        kl = (chunk.exp() * (chunk - log_marginal)).sum(dim=1)
        scores.append(torch.exp(kl.mean()))
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))


def _kth_neighbour_radii(feats: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Distance of each row of ``feats`` (N, D) to its k-th nearest other row, ``(N,)``."""
    radii = [torch.cdist(part, feats).kthvalue(k + 1, dim=1).values  # k + 1: the row itself is at 0
             for part in feats.split(batch_size)]
    return torch.cat(radii)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> float:
    """Share of ``points`` inside at least one ball ``|x - centres_i| <= radii_i``."""
    inside = 0
    for part in points.split(batch_size):
        inside += int((torch.cdist(part, centres) <= radii[None, :]).any(dim=1).sum())
    return inside / len(points)


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = PR_K,
                     batch_size: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of features ``(N, D)`` and ``(M, D)``.

    Precision: fraction of generated samples within the k-NN radius of some real sample; recall:
    fraction of real samples within the k-NN radius of some generated sample. Both in [0, 1].
    Euclidean distances with :func:`torch.cdist` in float32, ``batch_size`` rows at a time
    (memory ``batch_size * max(N, M)`` floats). Needs N, M > k.
    """
    _check_features(real_feats, fake_feats, need=k + 1)
    real, fake = real_feats.float(), fake_feats.float()
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    return _coverage(fake, real, real_radii, batch_size), _coverage(real, fake, fake_radii, batch_size)


# --- cached real-data features ---------------------------------------------------------------------

def _features_cache_dir() -> Path:
    """``$GENLAB_CACHE/features``, else ``$XDG_CACHE_HOME/genlab/features``, else ``~/.cache/genlab/features``."""
    return genlab_cache_dir() / "features"


def _data_of(config: Config | DataConfig) -> DataConfig:
    return config.data if isinstance(config, Config) else config


def feature_cache_path(config: Config | DataConfig, split: str, extractor, cache_dir: str | Path | None = None) -> Path:
    """``<cache_dir>/<dataset>-<split>-<size>-<extractor>.safetensors`` for the real features of a split.

    ``cache_dir`` defaults to ``$GENLAB_CACHE/features`` (else ``~/.cache/genlab/features``).
    ``<dataset>`` is the dataset name, plus a hash of the root directory for ``idx``/``folder``;
    ``<size>`` is the image side in pixels, with ``rgb`` appended for 3 channels and
    ``-first<N>`` when ``data.limit``/``data.test_limit`` keeps only N images.
    """
    data = _data_of(config)
    dataset = data.name
    if data.root is not None and data.name in ("idx", "folder"):
        dataset += "_" + hashlib.sha1(str(Path(data.root).resolve()).encode()).hexdigest()[:8]
    size = f"{data.image_size}" + ("rgb" if data.channels == 3 else "")
    limit = data.limit if split == "train" else data.test_limit
    if limit is not None:
        size += f"-first{limit}"
    root = Path(cache_dir) if cache_dir is not None else _features_cache_dir()
    return root / f"{dataset}-{split}-{size}-{extractor.name}.safetensors"


def _read_cache(path: Path, expected: dict[str, str]) -> torch.Tensor | None:
    """The cached features if the file is readable and its metadata matches ``expected``, else None."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if any(meta.get(key) != value for key, value in expected.items()):
                return None
            return fh.get_tensor("features")
    except (SafetensorError, OSError, ValueError, KeyError):
        return None  # corrupt or foreign file: recompute and overwrite


def _write_cache(path: Path, features: torch.Tensor, metadata: dict[str, str]) -> None:
    """Write atomically (:func:`~genlab.core.atomic.atomic_write`); a read-only cache is not an error."""
    with contextlib.suppress(OSError):
        atomic_write(path, lambda tmp: save_file({"features": features.contiguous()}, str(tmp), metadata=metadata))


def real_features(config: Config | DataConfig, split: str, extractor, cache_dir: str | Path | None = None,
                  batch_size: int = 500, progress: bool = True) -> torch.Tensor:
    """Features ``(N, D)`` float32 of the N real images of ``split`` ("train" | "test"), cached on disk.

    Images are loaded with :func:`~genlab.data.datasets.load_split` (so at ``data.image_size``
    and ``data.channels``, with ``data.limit``/``data.test_limit``), as uint8 then /255. The cache
    file (:func:`feature_cache_path`) is used only if its metadata matches the images' SHA-1, the
    extractor's name and weights version, N and D; otherwise the features are recomputed and the
    file rewritten atomically.

    Raises:
        DataError: the dataset has no such split.
    """
    from genlab.data.datasets import load_split

    data = _data_of(config)
    loaded = load_split(data, split)
    if loaded is None or len(loaded) == 0:
        raise DataError(f"dataset {data.name!r} has no {split} split to compare samples with")
    images = loaded.images.contiguous()
    expected = {
        "format": CACHE_FORMAT,
        "images_sha1": hashlib.sha1(images.numpy().tobytes()).hexdigest(),
        "images_shape": "x".join(map(str, images.shape)),
        "extractor": extractor.name,
        "extractor_version": str(getattr(extractor, "version", "")),
        "dim": str(extractor.dim),
    }
    path = feature_cache_path(data, split, extractor, cache_dir)
    if path.is_file():
        cached = _read_cache(path, expected)
        if cached is not None and cached.shape == (len(images), extractor.dim):
            return cached
    feats = extract_features(extractor, images, batch_size, progress=progress and len(images) > batch_size,
                             desc=f"{extractor.name} features of {data.name}/{split}")
    _write_cache(path, feats.float(), {**expected, "dataset": data.name, "split": split,
                                       "root": str(data.root or "")})
    return feats.float()


# --- evaluating a generator --------------------------------------------------------------------------

def _feature_info(extractor) -> dict[str, Any]:
    return {"name": extractor.name, "dim": extractor.dim, "version": str(getattr(extractor, "version", "")),
            "description": getattr(extractor, "description", "")}


def scores_from_features(key: str, real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor | None = None, *,
                         kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE, k: int = PR_K,
                         is_splits: int = IS_SPLITS, seed: int = METRIC_SEED) -> tuple[dict[str, float], dict]:
    """Flat metrics ``fid_<key>``, ``kid_<key>``, ``kid_<key>_std``, ``precision_<key>``, ``recall_<key>``
    (and ``is_<key>``, ``is_<key>_std`` when generated-sample ``logits`` (M, K) are given) of real
    features ``(N, D)`` and generated features ``(M, D)``; plus the settings used, for the protocol.
    """
    fk = fid_kid(real, fake, kid_subsets, kid_subset_size, seed)
    precision, recall = precision_recall(real, fake, k)
    out = {f"fid_{key}": fk["fid"], f"kid_{key}": fk["kid"], f"kid_{key}_std": fk["kid_std"],
           f"precision_{key}": precision, f"recall_{key}": recall}
    settings: dict[str, Any] = {"kid_subsets": kid_subsets, "kid_subset_size": fk["kid_subset_size"], "pr_k": k}
    if logits is not None:
        splits = min(is_splits, len(logits))
        out[f"is_{key}"], out[f"is_{key}_std"] = inception_score_from_logits(logits, splits)
        settings["is_splits"] = splits
    return out, settings


def _extractors(config: Config, inception: bool) -> tuple[list, dict[str, str]]:
    """The extractors that apply to ``config``'s data, and why the others were skipped."""
    data = config.data
    used, skipped = [], {}
    if data.channels != 1 or data.name not in EVALUATOR_DATASETS:
        skipped["evaluator"] = (f"not applicable: the evaluator classifier is for 1-channel "
                                f"{'/'.join(EVALUATOR_DATASETS)} images; data is {data.name} "
                                f"with {data.channels} channel{'s' if data.channels != 1 else ''}")
    else:
        try:
            used.append(EvaluatorFeatures(dataset=data.name))
        except CheckpointError as exc:  # e.g. no fashion-mnist evaluator shipped yet
            skipped["evaluator"] = f"unavailable: {exc}"
    if inception:
        used.append(InceptionFeatures())  # asked for explicitly: a missing package is an error
    else:
        skipped["inception"] = "off (set eval.inception=true; about 0.1 s per image per CPU core)"
    return used, skipped


def quantise_8bit(images: torch.Tensor) -> torch.Tensor:
    """``images`` in [0, 1] rounded to the 256 levels of an 8-bit image, as if saved and reloaded like the reals."""
    return images.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


@torch.no_grad()
def _sample_features(model, n: int, batch_size: int, extractors: list, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Features (and evaluator logits) of ``n`` samples drawn with ``seed``, quantised to 8 bits."""
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, dict[str, list]] = {e.key: {"features": [], "logits": []} for e in extractors}
    batches = list(torch.arange(n).split(batch_size))
    for index in tqdm(batches, desc="sample features", leave=False, dynamic_ncols=True, disable=len(batches) < 4):
        x = quantise_8bit(model.sample(len(index), generator=generator).float().cpu())
        for e in extractors:
            if hasattr(e, "features_and_logits"):
                feats, logits = e.features_and_logits(x)
                parts[e.key]["logits"].append(logits)
            else:
                feats = e(x)
            parts[e.key]["features"].append(feats.float())
    return {key: {name: torch.cat(v) for name, v in p.items() if v} for key, p in parts.items()}


def evaluate_gan(model, config: Config, *, inception: bool | None = None,
                 cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Sample-quality metrics of an unconditional generator as a flat dict (``METRICS["gan"]``).

    ``model.sample(n, generator=...)`` must give images ``(n, C, S, S)`` in [0, 1]. Draws
    ``config.eval.num_samples`` samples (batches of ``config.eval.batch_size``, latent noise seeded
    with :data:`METRIC_SEED`) and compares them with the split ``eval.reference_split`` (the
    test split by default; all of it unless ``data.test_limit``): evaluator-feature
    FID/KID/IS/precision/recall for 1-channel MNIST-like data with a shipped evaluator, and TF-Inception FID/KID/precision/recall if ``inception``
    (default: ``config.eval.inception``, false when the config has no such key). Keys and the
    ``protocol`` record: see the module docstring. Real features are cached in ``cache_dir``
    (default ``$GENLAB_CACHE/features``).
    """
    if inception is None:
        inception = bool(getattr(config.eval, "inception", False))
    n, batch_size, split = config.eval.num_samples, config.eval.batch_size, config.eval.reference_split
    extractors, skipped = _extractors(config, inception)
    if not extractors:  # nothing to score with: say so rather than write an eval.json without metrics
        raise GenlabError(f"no sample metric applies to {config.data.name} images with {config.data.channels} "
                          f"channel{'s' if config.data.channels != 1 else ''} without TF-Inception "
                          f"(evaluator: {skipped['evaluator']}): set eval.inception=true for FID/KID/precision/recall")
    protocol: dict[str, Any] = {"num_samples": n, "reference": f"{config.data.name}/{split}",
                                "sample_seed": METRIC_SEED, "sample_quantisation": "8-bit",
                                "features": {}, "skipped": skipped}
    out: dict[str, Any] = {}
    if extractors:
        was_training = model.training
        model.eval()
        try:
            fake = _sample_features(model, n, batch_size, extractors, METRIC_SEED)
        finally:
            model.train(was_training)
        for e in extractors:
            real = real_features(config, split, e, cache_dir, batch_size)
            scores, settings = scores_from_features(e.key, real, fake[e.key]["features"], fake[e.key].get("logits"))
            out |= scores
            protocol["reference_images"] = len(real)
            protocol["features"][e.key] = _feature_info(e)
            protocol |= settings
    out["protocol"] = protocol
    return out


def _load_samples(folder: str | Path, data: DataConfig, limit: int | None, skip_bad: bool):
    """A folder's images as :func:`genlab.data.folders.load_image_folder` decodes them at ``data``'s size and channels."""
    from genlab.data.folders import load_image_folder

    loaded = load_image_folder(folder, image_size=data.image_size, mode="L" if data.channels == 1 else "RGB",
                               limit=limit, skip_bad=skip_bad)
    if len(loaded) < PR_K + 1:
        raise GenlabError(f"{folder}: {len(loaded)} images; sample metrics need at least {PR_K + 1}")
    if limit is not None and len(loaded) < limit:
        log.warning("%s: %d images, fewer than eval.num_samples=%d: FID and KID rise as the sample shrinks, so "
                    "compare them only between equal numbers of images (the count is num_samples in the protocol)",
                    folder, len(loaded), limit)
    return loaded


def _folder_scores(images: torch.Tensor, data: DataConfig, extractor, split: str, cache_dir, batch_size: int):
    """Scores and settings of uint8 ``images`` ``(N, C, S, S)`` against the cached real features of ``split``."""
    logits = None
    if hasattr(extractor, "features_and_logits"):
        feats, logits = [], []
        for part in images.split(batch_size):
            f, lg = extractor.features_and_logits(part.float().div(255.0))
            feats.append(f)
            logits.append(lg)
        fake, logits = torch.cat(feats), torch.cat(logits)
    else:
        fake = extract_features(extractor, images, batch_size)
    real = real_features(data, split, extractor, cache_dir, batch_size)
    out, settings = scores_from_features(extractor.key, real, fake, logits)
    return out, settings | {"reference_images": len(real)}


def evaluate_folder(folder: str | Path, config: Config, *, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """``genlab eval FOLDER --against CONFIG``: the metrics of :func:`evaluate_gan` for a folder of images.

    The folder (searched recursively, files in sorted order; the first ``eval.num_samples``) is
    decoded once at ``config.data``'s size and channels and scored against ``eval.reference_split``
    of ``config.data`` with the same extractors as a GAN run of that config: the evaluator for
    1-channel MNIST-like data, TF-Inception with ``eval.inception``. ``data.skip_bad_files`` skips
    undecodable files (counted in the protocol) instead of stopping at the first.

    Raises:
        GenlabError: no extractor applies (e.g. RGB data without ``eval.inception=true``), the
            folder has too few images, or an image cannot be decoded.
    """
    data, split = config.data, config.eval.reference_split
    extractors, skipped = _extractors(config, bool(config.eval.inception))
    if not extractors:
        raise GenlabError(f"no feature extractor applies to {data.name} images with {data.channels} channels: "
                          "set eval.inception=true for TF-Inception FID/KID")
    loaded = _load_samples(folder, data, config.eval.num_samples, data.skip_bad_files)
    out: dict[str, Any] = {}
    protocol: dict[str, Any] = {"num_samples": len(loaded), "samples": str(folder), "reference": f"{data.name}/{split}",
                                "skipped_files": len(loaded.skipped), "features": {}, "skipped": skipped}
    for e in extractors:
        scores, settings = _folder_scores(loaded.images, data, e, split, cache_dir, config.eval.batch_size)
        out |= scores
        protocol["features"][e.key] = _feature_info(e)
        protocol |= settings
    out["protocol"] = protocol
    return out
