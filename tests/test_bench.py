"""genlab bench: the plain baselines train, the measurements are well-formed (no timing assertions)."""

from __future__ import annotations

import pytest
import torch

from conftest import CONFIGS, TINY
from genlab.bench.plain import PLAIN_STEPS
from genlab.bench.run import markdown
from genlab.bench.speed import compute_peaks, time_alternating, train_step_speed
from genlab.config import load_config
from genlab.core.noise import SharedNoise
from genlab.data.datasets import load_source
from genlab.registry import build_model

TINY_GAN = ["data.limit=32", "data.test_limit=32", "data.image_size=32", "model.width=8"]
TINY_CYCLEGAN = ["data.limit=8", "data.test_limit=8", "data.image_size=32", "model.ngf=4", "model.ndf=4",
                 "model.generator=resnet_6"]


def _plain_changes_weights(config, overrides, kind):
    cfg = load_config(CONFIGS / config, overrides)
    model = build_model(cfg)
    step = PLAIN_STEPS[cfg.model.family](model, cfg)
    data = load_source(cfg.data, "train", kind)
    batch = data.batch(torch.arange(4), SharedNoise(0), torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    step(batch)
    return sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_plain_steps_update_every_family_they_cover():
    assert _plain_changes_weights("vae-mnist.yaml", TINY, "images") > 0
    assert _plain_changes_weights("dcgan-emoji.yaml", TINY_GAN, "images") > 0
    assert _plain_changes_weights("cyclegan-emoji.yaml", TINY_CYCLEGAN, "unpaired") > 0
    assert _plain_changes_weights("stackgan-emoji.yaml", ["data.limit=16", "data.test_limit=16", "data.image_size=16"],
                                  "captioned") > 0


def test_train_step_speed_reports_rates_flops_and_data_share():
    row = train_step_speed(CONFIGS / "vae-mnist.yaml", TINY, steps=2, block=2, genlab_only=["train.precision=fp32"])
    assert row["family"] == "vae" and row["precision"] == "fp32" and row["steps"] == 2
    assert row["genlab"] > 0 and row["plain_fp32_eager"] > 0
    assert row["ratio"] == row["genlab"] / row["plain_fp32_eager"]
    assert len(row["block_ratios"]) == 1 and row["block_ratios"][0] == pytest.approx(row["ratio"])  # one block of 2 steps
    assert row["gflop_per_step"] > 0 and row["genlab_gflops"] > 0
    assert 0 < row["data_share"] < 1
    assert row["sample_images_per_s"] > 0
    table = markdown({"cpu": "test CPU", "threads": 1, "peaks": {"fp32": {"matmul": 10.0, "conv": 20.0}},
                      "train": [{"label": "tiny VAE"} | row]})
    assert "| tiny VAE | 16 | fp32 |" in table
    capped = train_step_speed(CONFIGS / "vae-mnist.yaml", TINY, steps=2, block=2, max_batch_size=8,
                              genlab_only=["train.precision=fp32"])
    assert capped["batch_size"] == 8


@pytest.mark.slow
def test_compiled_train_step_speed_reports_its_compile_time():
    row = train_step_speed(CONFIGS / "vae-mnist.yaml", TINY, steps=2, block=2,
                           genlab_only=["train.precision=fp32", "train.compile=true"])
    assert row["compile_s"] > 0 and row["genlab"] > 0 and row["gflop_per_step"] > 0
    assert row["genlab_eager"] > 0 and row["compile_speedup"] == pytest.approx(row["genlab"] / row["genlab_eager"])
    pays = row["compile_pays_after_steps"]
    assert pays is None or pays > 0
    table = markdown({"cpu": "test CPU", "threads": 1, "compile": True, "peaks": {"fp32": {"matmul": 10.0, "conv": 20.0}},
                      "train": [{"label": "tiny VAE"} | row]})
    assert "train.compile=true" in table and f"| tiny VAE | {row['compile_s']:.0f} s |" in table


def test_time_alternating_interleaves_the_runs_and_reverses_every_other_block():
    calls = []
    seconds = time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                                "c": lambda: calls.append("c")}, blocks=3)
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert list(seconds) == ["a", "b", "c"] and all(len(v) == 3 and min(v) >= 0 for v in seconds.values())


def test_compute_peaks_measures_fp32_and_bf16():
    peaks = compute_peaks(seconds=0.01)
    assert set(peaks) == {"fp32", "bf16"}
    assert all(v > 0 for dtype in peaks.values() for v in dtype.values())
    assert set(compute_peaks(seconds=0.01, dtypes=("fp32",))) == {"fp32"}


def test_markdown_shows_the_ratios_range_over_blocks():
    row = {"label": "case", "batch_size": 8, "precision": "fp32", "genlab": 12.0, "plain_fp32_eager": 10.0, "ratio": 1.2,
           "block_ratios": [1.25, 1.1, 1.31], "gflop_per_step": 1.0, "genlab_gflops": 5.0, "data_share": 0.01}
    peaks = {"fp32": {"matmul": 10.0, "conv": 20.0}}
    assert "| **1.20×** (1.10–1.31) |" in markdown({"cpu": "CPU", "threads": 1, "peaks": peaks, "train": [row]})
    one_block = row | {"block_ratios": [1.2]}
    assert "| **1.20×** |" in markdown({"cpu": "CPU", "threads": 1, "peaks": peaks, "train": [one_block]})


def test_markdown_leaves_the_share_out_where_a_dtype_has_no_peak():
    row = {"label": "bf16 case", "batch_size": 8, "precision": "bf16", "genlab": 10.0, "gflop_per_step": 1.0,
           "genlab_gflops": 5.0, "data_share": 0.01}
    table = markdown({"cpu": "AVX2 CPU", "threads": 1, "peaks": {"fp32": {"matmul": 10.0, "conv": 20.0}}, "train": [row]})
    assert "| bf16 case | 8 | bf16 | 10.0 | — | — | 1.00 | 5 | 1.0 |" in table
    table = markdown({"cpu": "AVX2 CPU", "threads": 1, "peaks": {"bf16": {"matmul": 10.0, "conv": 20.0}}, "train": [row]})
    assert "| 5 (25 %) |" in table


def test_bench_without_compile_runs_eager_even_if_the_config_compiles(tmp_path):
    from genlab.bench.run import run_bench

    text = (CONFIGS / "vae-mnist.yaml").read_text()
    assert "\ntrain:\n" in text
    (tmp_path / "vae-mnist.yaml").write_text(text.replace("\ntrain:\n", "\ntrain:\n  compile: true\n", 1))
    result = run_bench(quick=True, configs=tmp_path, steps=2, features=False, only=["VAE, lab"],
                       progress=lambda *_: None)
    row = result["train"][0]
    assert row["genlab"] > 0 and "compile_s" not in row


def test_only_picks_cases_in_any_letter_case_among_those_of_the_mode(monkeypatch):
    import genlab.bench.run as bench_run
    from genlab.errors import GenlabError

    monkeypatch.setattr(bench_run, "compute_peaks", lambda *args: {})
    monkeypatch.setattr(bench_run, "train_step_speed", lambda path, overrides, **kw: {"genlab": 1.0, "precision": "fp32"})
    quiet = dict(features=False, progress=lambda line: None)
    picked = lambda **kw: [row["label"] for row in bench_run.run_bench(**kw, **quiet)["train"]]  # noqa: E731
    assert picked(quick=True, only=["vae"]) == ["VAE, lab-report (MNIST)"]  # the CVAE is not a quick case
    assert picked(quick=False, only=["vae"]) == ["VAE, lab-report (MNIST)", "CVAE, lab-report (MNIST)"]
    with pytest.raises(GenlabError, match="no case matches") as error:
        bench_run.run_bench(quick=True, only=["nothing-like-this"], **quiet)
    assert "DCGAN, Radford" in str(error.value) and "CVAE" not in str(error.value)
