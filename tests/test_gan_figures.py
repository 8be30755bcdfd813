"""GAN analysis figures (d_outputs, fixed-noise samples, interpolations) and the GAN experiment
script's summary: mean ± std formatting, the results table and the verdict against the baseline."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_gan import TINY_GAN

from conftest import CONFIGS, ROOT
from genlab import registry
from genlab.analysis.gan_figures import interpolation_latents, lerp, slerp, write_gan_figures
from genlab.analysis.run_figures import write_figures
from genlab.config import load_config
from genlab.runs import load_run
from genlab.train import loop


def assert_png(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


# --- figures ------------------------------------------------------------------------------------

def test_gan_is_registered():
    assert registry.get("gan").figures is write_gan_figures


@pytest.mark.parametrize("extra", [[], ["model.ema_decay=0.9", "model.loss=hinge"]], ids=["plain", "ema-hinge"])
def test_write_figures_after_a_tiny_dcgan_run(tmp_path, extra):
    config = load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, "train.epochs=1", *extra])
    run = loop.train(config, tmp_path / "run")
    written = write_figures(run)
    names = {p.name for p in written}
    assert {"loss_curves.png", "d_outputs.png", "samples_fixed_noise.png", "latent_interpolation.png"} <= names
    for path in written:
        assert path.parent == run / "figures"
        assert_png(path)
    # the fixed-noise grid is the same on a second call (fixed seed, eval-mode networks)
    samples = run / "figures" / "samples_fixed_noise.png"
    with Image.open(samples) as image:
        first = image.tobytes()
    write_figures(run)
    with Image.open(samples) as image:
        assert image.tobytes() == first
    # the figures decode latents exactly as GAN.sample does (the EMA generator when there is one)
    _, model, _ = load_run(run)
    z = torch.randn(4, model.config.model.latent_dim, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(model.generate(z), model.sample(4, generator=torch.Generator().manual_seed(5)))


def test_lerp_and_slerp_hit_the_endpoints_and_slerp_keeps_the_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(3, 100, generator=g), torch.randn(3, 100, generator=g)
    t = torch.linspace(0, 1, 5)
    for path in (lerp(z0, z1, t), slerp(z0, z1, t)):
        assert path.shape == (3, 5, 100)
        torch.testing.assert_close(path[:, 0], z0)
        torch.testing.assert_close(path[:, -1], z1)
    # Nearly orthogonal Gaussian draws: the straight line's midpoint shrinks to about 1/sqrt(2) of
    # the norm, the great circle's stays between the endpoint norms.
    norms0, norms1 = z0.norm(dim=1), z1.norm(dim=1)
    mid_lerp, mid_slerp = lerp(z0, z1, t)[:, 2].norm(dim=1), slerp(z0, z1, t)[:, 2].norm(dim=1)
    assert (mid_lerp < 0.85 * torch.minimum(norms0, norms1)).all()
    assert (mid_slerp > 0.95 * torch.minimum(norms0, norms1)).all()
    assert (mid_slerp < 1.05 * torch.maximum(norms0, norms1)).all()
    # parallel endpoints: no division by sin(0)
    same = slerp(z0[:1], 2 * z0[:1], t)
    assert torch.isfinite(same).all()
    torch.testing.assert_close(same, lerp(z0[:1], 2 * z0[:1], t))


def test_interpolation_latents_alternate_lerp_and_slerp_rows():
    z = interpolation_latents(latent_dim=6, pairs=2, steps=4, seed=1).view(2, 2, 4, 6)
    for pair in z:
        torch.testing.assert_close(pair[0, [0, -1]], pair[1, [0, -1]])  # same endpoints
        assert not torch.allclose(pair[0, 1:-1], pair[1, 1:-1])  # different paths between them


# --- the experiment script's summary ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def experiments():
    """benchmarks/gan_experiments.py, imported by path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gan_experiments", ROOT / "benchmarks" / "gan_experiments.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def fake_runs(fids: list[float], kids: list[float] | None = None) -> list[dict]:
    kids = kids or [f / 1000 for f in fids]
    return [{"metrics": {"fid_evaluator": f, "kid_evaluator": k, "precision_evaluator": 0.5, "recall_evaluator": 0.4,
                         "is_evaluator": 8.0},
             "train_seconds": 10.0, "last_epoch": {"train/d_real": 0.7, "train/d_fake": 0.3},
             "params": {"generator": 1000, "discriminator": 500}, "skipped": False}
            for f, k in zip(fids, kids)]


def test_mean_std_and_its_formatting(experiments):
    stat = experiments.mean_std([1.0, 2.0, 3.0, None, float("nan")])
    assert stat["mean"] == 2.0 and stat["std"] == 1.0 and stat["n"] == 3
    fmt = experiments.format_mean_std
    assert fmt({"mean": 12.3456, "std": 1.234}) == "12.3 ± 1.2"
    assert fmt({"mean": 0.01234, "std": 0.00056}) == "0.01234 ± 0.00056"  # 2 significant figures of the std
    assert fmt({"mean": 1234.5, "std": 56.0}) == "1234 ± 56"
    assert fmt(experiments.mean_std([12.3456])) == "12.35"  # one seed: no ± at all
    assert fmt(experiments.mean_std([])) == "–"
    assert fmt(None) == "–"


def test_results_table_rows_and_columns(experiments):
    summaries = {"baseline": experiments.summarize(fake_runs([10.0, 11.0, 12.0])),
                 "spectral norm": experiments.summarize(fake_runs([5.0, 6.0, 7.0]))}
    table = experiments.results_table(summaries, {"baseline": 3, "spectral norm": 3},
                                      {"baseline": {"train s": "10"}, "spectral norm": {"train s": "12"}})
    lines = table.splitlines()
    assert lines[0] == "| variant | seeds | FID | KID | precision | recall | IS | train s |"
    assert lines[2].startswith("| baseline | 3 | 11.0 ± 1.0 | 0.0110 ± 0.0010 | 0.5 | 0.4 | 8 | 10 |")
    assert lines[3].startswith("| spectral norm | 3 | 6.0 ± 1.0 |")
    assert "Inception" not in table  # columns only for metrics that were computed


def test_verdict_names_the_winners_and_says_when_none_wins(experiments):
    summaries = {"baseline": experiments.summarize(fake_runs([10.0, 11.0, 12.0])),
                 "A": experiments.summarize(fake_runs([5.0, 6.0, 7.0])),        # 5 better, combined std 1.41
                 "B": experiments.summarize(fake_runs([10.5, 11.0, 11.5])),     # within the std
                 "C": experiments.summarize(fake_runs([20.0, 21.0, 22.0]))}     # clearly worse
    text = experiments.verdict(summaries, "baseline", "fid_evaluator", "FID")
    assert "beat the baseline" in text and "A (Δ = -5)" in text
    assert "Worse than the baseline" in text and "C (Δ = +10)" in text
    assert "Within the combined std: B." in text
    assert experiments.compare_to_baseline(summaries, "baseline", "fid_evaluator")["better"] == [("A", -5.0)]

    del summaries["A"]
    text = experiments.verdict(summaries, "baseline", "fid_evaluator", "FID")
    assert "no variant beats the baseline by more than the combined std" in text
    # higher-is-better metrics flip the direction: C's larger value would "win"
    flipped = experiments.verdict(summaries, "baseline", "fid_evaluator", "X", lower_is_better=False)
    assert "(higher is better): beat the baseline" in flipped and "C (Δ = +10)" in flipped

    single = {"baseline": experiments.summarize(fake_runs([10.0])), "A": experiments.summarize(fake_runs([1.0]))}
    text = experiments.verdict(single, "baseline", "fid_evaluator", "FID")
    assert "no variant can be judged" in text and "beat the baseline" not in text


def test_write_results_writes_table_verdicts_and_figures(experiments, tmp_path):
    args = experiments.parse_args(["noise", "--out", str(tmp_path), "--seeds", "0", "1"])
    assert args.epochs == experiments.DEFAULTS["epochs"] and args.num_samples == 10000
    smoke = experiments.parse_args(["noise", "--smoke", "--epochs", "2"])
    assert smoke.epochs == 2 and smoke.limit == 256 and smoke.seeds == [0]  # explicit options beat --smoke
    config = CONFIGS / "dcgan-mnist.yaml"
    variants = [experiments.Variant(f"latent_dim={d}", config, (f"model.latent_dim={d}",), value=d) for d in (2, 10, 100)]
    section = experiments.Section("latent_dim", baseline="latent_dim=100", variants=variants,
                                  param="latent dimension", logx=True)
    section.runs = {"latent_dim=2": fake_runs([30.0, 32.0]), "latent_dim=10": fake_runs([10.0, 10.4]),
                    "latent_dim=100": fake_runs([20.0, 21.0])}
    command = "python benchmarks/gan_experiments.py noise --seeds 0 1"
    json_path, md_path = experiments.write_results("noise", [section], args, command)
    text = md_path.read_text()
    assert text.splitlines()[4] == "    " + command  # the exact command, near the top
    assert "| latent_dim=10 | 2 | 10.20 ± 0.28 |" in text
    assert "beat the baseline (latent_dim=100)" in text and "latent_dim=10 (Δ = -10.3)" in text
    assert "Worse than the baseline (latent_dim=100)" in text and "latent_dim=2 (Δ = +10.5)" in text
    for name in ("latent_dim_bars.png", "latent_dim_sweep.png"):
        assert f"]({name})" in text
        width, height = assert_png(tmp_path / name)
        assert width > 300 and height > 200
    assert json_path.is_file() and '"vs_baseline"' in json_path.read_text()
    assert math.isclose(experiments.mean_std([30.0, 32.0])["std"], math.sqrt(2))


def test_keep_results_merges_earlier_rows_made_with_the_same_settings(experiments, tmp_path):
    argv = ["noise", "--out", str(tmp_path), "--seeds", "0", "1", "--epochs", "1", "--set", "model.width=8"]
    args = experiments.parse_args(argv)
    config = CONFIGS / "dcgan-mnist.yaml"
    variants = [experiments.Variant(f"latent_dim={d}", config, (f"model.latent_dim={d}",), value=d) for d in (2, 100)]

    def section():
        return experiments.Section("latent_dim", baseline="latent_dim=100", variants=variants, param="latent dimension")

    def runs(variant, fids, command):
        return [run | {"seed": seed, "overrides": experiments.run_overrides(args, variant), "command": command}
                for seed, run in zip(args.seeds, fake_runs(fids))]

    first = section()
    first.runs = {"latent_dim=2": runs(variants[0], [30.0, 32.0], "cmd-1"),
                  "latent_dim=100": runs(variants[1], [20.0, 21.0], "cmd-1")}
    experiments.write_results("noise", [first], args, "cmd-1")

    again = section()  # latent_dim=2 re-run by a second command; latent_dim=100 kept from the file
    again.runs = {"latent_dim=2": runs(variants[0], [10.0, 11.0], "cmd-2")}
    kept = experiments.keep_previous_results([again], args, tmp_path / "results.json")
    assert kept == ["latent_dim=100"]
    assert [r["metrics"]["fid_evaluator"] for r in again.runs["latent_dim=100"]] == [20.0, 21.0]
    assert [r["command"] for r in again.runs["latent_dim=100"]] == ["cmd-1", "cmd-1"]
    _, md_path = experiments.write_results("noise", [again], args, "cmd-2")
    text = md_path.read_text()
    assert "    cmd-1" in text and "    cmd-2" in text  # both commands that made rows are listed
    assert "| latent_dim=2 | 2 | 10.50 ± 0.71 |" in text and "| latent_dim=100 | 2 | 20.50 ± 0.71 |" in text

    other = experiments.parse_args([*argv[:-1], "model.width=16"])  # other settings: refuse to mix them
    with pytest.raises(SystemExit, match=r"latent_dim=2 seed 0 .* was made with overrides .*model.width=8.*, not .*model.width=16"):
        experiments.keep_previous_results([section()], other, tmp_path / "results.json")
    more_seeds = experiments.parse_args([*argv, "--seeds", "0", "1", "2"])
    with pytest.raises(SystemExit, match=r"no run for seed\(s\) \[2\]"):
        experiments.keep_previous_results([section()], more_seeds, tmp_path / "results.json")
    with pytest.raises(SystemExit, match="does not exist"):
        experiments.keep_previous_results([section()], args, tmp_path / "missing.json")
