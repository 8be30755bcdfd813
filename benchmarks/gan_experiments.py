"""GAN experiments of issue 3: FCGAN vs DCGAN, the trick ablation, and the noise sweeps.

    python benchmarks/gan_experiments.py compare  [--seeds 0 1 2] [--epochs E] [--limit N] [--num-samples M] [--inception]
    python benchmarks/gan_experiments.py ablation [same options] [--config configs/dcgan-mnist.yaml]
    python benchmarks/gan_experiments.py noise    [same options] [--latent-dims 2 10 100] [--sigmas 0 0.05 0.1 0.2]
    ... --smoke      tiny end-to-end check (256 images, 1 epoch, small nets, 128 samples, 1 seed)

* ``compare`` — seed question 7: FCGAN (``configs/fcgan-mnist.yaml``) versus DCGAN
  (``configs/dcgan-mnist.yaml``) on the same MNIST images at the same size, for the same epochs and
  batch size; each keeps its own recipe (learning rate, Adam betas, init) from its config.
* ``ablation`` — the baseline config and one variant per trick toggled (label smoothing 0.9, label
  flips p = 0.05, instance noise σ = 0.1 annealed to 0 over the run, one mixed real+fake D batch
  instead of separate ones, 2 D steps, 2 G steps, DiffAugment, spectral norm, EMA of G 0.999,
  LSGAN and hinge losses).
* ``noise`` — seed question 6: latent dimension sweep, and instance-noise σ sweep (annealed to 0
  over the run, as in the ablation).

Every (variant, seed) is trained by genlab's loop in its own run directory
``RUNS/<section>/<variant>/seed<k>`` (``--runs``, default ``runs/gan_<experiment>``, outside git)
and evaluated with ``genlab eval``'s :func:`evaluate_run` (FID, KID, precision, recall and the
Inception-Score-style score on the evaluator classifier's features; TF-Inception FID/KID too with
``--inception``). Runs are resumable: a run whose ``eval.json`` matches the requested epochs and
eval settings is skipped, an interrupted one continues from its newest checkpoint (rerun the same
command). ``--out`` (default ``benchmarks/results/gan_<experiment>``) receives ``results.json``,
``results.md`` (the exact command, a table of mean ± sample std over seeds, and which variants beat
the baseline by more than the combined std — or that none does), bar charts with error bars
(plus line plots for the sweeps) and ``report.html`` (``genlab report`` of every run: a row per run,
overlaid loss curves, each run's previews and figures). ``--variants`` trains a subset (e.g. one per process); rerunning
without it then only collects. Run directories are not kept in git: ``--keep-results`` re-runs some
variants and keeps the other rows of an existing ``results.json`` (made with the same settings), and
``results.md`` then lists every command that made a row.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genlab.analysis.run_figures import write_figures
from genlab.config import Config, load_config
from genlab.core.runlog import read_metrics
from genlab.data.datasets import load_split
from genlab.eval.run_metrics import evaluate_run
from genlab.registry import build_model
from genlab.report import write_report
from genlab.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

#: settings of a real run and of ``--smoke``; an option given on the command line wins over both
DEFAULTS = {"seeds": [0, 1, 2], "epochs": 5, "limit": None, "num_samples": 10000, "threads": 0}
SMOKE = {"seeds": [0], "epochs": 1, "limit": 256, "num_samples": 128, "threads": 1}
#: smoke-size networks per architecture (``model.width`` only exists for dcgan, ``model.hidden`` for fc)
SMOKE_NETS = {"dcgan": ["model.width=8"], "fc": ["model.hidden=[32,64,128]"]}
#: per-epoch test losses on the first 256 test images only in smoke runs (eval.json always uses all)
SMOKE_DATA = ["data.test_limit=256"]

#: table columns: (label, eval.json metric key, lower is better)
METRICS = [("FID", "fid_evaluator", True), ("KID", "kid_evaluator", True),
           ("precision", "precision_evaluator", False), ("recall", "recall_evaluator", False),
           ("IS", "is_evaluator", False),
           ("FID (Inception)", "fid_inception", True), ("KID (Inception)", "kid_inception", True)]
#: metrics on which variants are judged against the baseline
VERDICT_KEYS = ("fid_evaluator", "kid_evaluator", "fid_inception")


@dataclass(frozen=True)
class Variant:
    """One row of a results table: a base config plus overrides (``value``: the swept number, if any)."""

    name: str
    config: Path
    overrides: tuple[str, ...] = ()
    value: float | None = None

    @property
    def slug(self) -> str:
        """Directory name: the variant name with anything but ``[A-Za-z0-9._=-]`` turned into ``_``."""
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", self.name).strip("_")


@dataclass
class Section:
    """A group of variants compared against one of them (``baseline``); ``param`` names a sweep's axis."""

    name: str
    baseline: str
    variants: list[Variant]
    param: str | None = None
    logx: bool = False
    runs: dict[str, list[dict]] = field(default_factory=dict)  # variant name -> one record per seed


# --- one run ------------------------------------------------------------------------------------------

def _finished(run_dir: Path, config: Config) -> dict | None:
    """The run's ``eval.json`` if it was written for ``config``'s epochs and eval settings, else None."""
    path = run_dir / "eval.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("epoch") != config.train.epochs or result.get("eval_config") != config.to_dict()["eval"]:
        return None
    return result


def run_variant(base_config_path: str | Path, overrides: list[str], seed: int, out: str | Path) -> dict[str, Any]:
    """Train ``base_config_path`` + ``overrides`` with ``seed`` in run directory ``out``, evaluate it, and
    return a record ``{seed, run_dir, epoch, skipped, train_seconds, eval_seconds, params, metrics, last_epoch}``.

    Resumable: training continues from the newest checkpoint in ``out`` (``resume=True``), and a run
    whose ``eval.json`` already matches the requested epochs and eval settings is not touched.
    ``metrics`` holds the numeric entries of ``eval.json``; ``last_epoch`` the final epoch's
    ``metrics.jsonl`` record (D(real), D(fake), losses); ``train_seconds`` sums its epoch times.
    """
    out = Path(out)
    config = load_config(base_config_path, [*overrides, f"seed={seed}"])
    result = _finished(out, config)
    skipped = result is not None
    if not skipped:
        train(config, out, resume=True)
        write_figures(out)
        result = evaluate_run(out, [o for o in overrides if o.startswith("eval.")])
    history = read_metrics(out)
    return {
        "seed": seed,
        "run_dir": str(out),
        "epoch": result["epoch"],
        "skipped": skipped,
        "train_seconds": sum(r.get("time/epoch_s", 0.0) for r in history),
        "eval_seconds": result["seconds"],
        "params": build_model(config).parameter_counts(),
        "metrics": {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))},
        "last_epoch": history[-1] if history else {},
    }


# --- statistics and the results table -------------------------------------------------------------

def mean_std(values: list[float]) -> dict[str, Any]:
    """``{mean, std, n, values}``: std is the sample standard deviation (n - 1), None below 2 values."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) >= 2 else None,
            "n": len(values), "values": values}


def summarize(runs: list[dict]) -> dict[str, dict[str, Any]]:
    """Per metric key of the runs' ``metrics``: :func:`mean_std` over the runs (seeds)."""
    keys = sorted({k for run in runs for k in run["metrics"]})
    return {k: mean_std([run["metrics"].get(k) for run in runs]) for k in keys}


def format_mean_std(stat: dict[str, Any] | None) -> str:
    """``"12.3 ± 1.4"``: the std to 2 significant figures and the mean to the same decimals;
    4 significant figures without a std (one seed); ``"–"`` without values."""
    if not stat or stat.get("mean") is None:
        return "–"
    mean, std = stat["mean"], stat.get("std")
    if std is None or std == 0 or not math.isfinite(std):
        return f"{mean:.4g}"
    decimals = max(0, 1 - math.floor(math.log10(abs(std))))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def results_table(summaries: dict[str, dict[str, dict]], seeds: dict[str, int],
                  extra: dict[str, dict[str, str]] | None = None) -> str:
    """Markdown table, one row per variant (in the order of ``summaries``): variant, seeds, then each
    metric of :data:`METRICS` that any variant has, as mean ± std, then the ``extra`` columns."""
    columns = [(label, key) for label, key, _ in METRICS if any(key in s for s in summaries.values())]
    extra = extra or {}
    extra_labels = list(dict.fromkeys(label for cols in extra.values() for label in cols))
    header = ["variant", "seeds", *[label for label, _ in columns], *extra_labels]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, summary in summaries.items():
        cells = [name, str(seeds.get(name, 0)), *[format_mean_std(summary.get(key)) for _, key in columns],
                 *[extra.get(name, {}).get(label, "") for label in extra_labels]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_to_baseline(summaries: dict[str, dict[str, dict]], baseline: str, key: str,
                        lower_is_better: bool = True) -> dict[str, list]:
    """Which variants differ from ``baseline`` on metric ``key`` by more than the combined std
    ``sqrt(s_b² + s_v²)`` (sample stds over seeds). Returns ``{"better": [(name, delta)], "worse": [...],
    "unclear": [names], "unjudged": [names with < 2 seeds on either side]}``; ``delta`` is
    variant mean − baseline mean."""
    out: dict[str, list] = {"better": [], "worse": [], "unclear": [], "unjudged": []}
    base = summaries.get(baseline, {}).get(key)
    for name, summary in summaries.items():
        if name == baseline or key not in summary:
            continue
        stat = summary[key]
        if base is None or base["std"] is None or stat["std"] is None:
            out["unjudged"].append(name)
            continue
        delta = stat["mean"] - base["mean"]
        combined = math.hypot(base["std"], stat["std"])
        gain = -delta if lower_is_better else delta
        if gain > combined:
            out["better"].append((name, delta))
        elif -gain > combined:
            out["worse"].append((name, delta))
        else:
            out["unclear"].append(name)
    return out


def verdict(summaries: dict[str, dict[str, dict]], baseline: str, key: str, label: str,
            lower_is_better: bool = True) -> str:
    """One markdown paragraph: the variants that beat ``baseline`` on ``key`` by more than the combined
    std, or the explicit statement that none does; then the clearly worse, unclear and unjudged ones."""
    c = compare_to_baseline(summaries, baseline, key, lower_is_better)
    head = f"**{label}** ({'lower' if lower_is_better else 'higher'} is better)"
    the_baseline = "the baseline" if baseline == "baseline" else f"the baseline ({baseline})"
    rule = "by more than the combined std √(s_baseline² + s_variant²)"

    def listing(items):
        return ", ".join(f"{name} (Δ = {delta:+.3g})" for name, delta in items)

    if c["better"]:
        text = f"{head}: beat {the_baseline} {rule}: {listing(c['better'])}."
    elif c["worse"] or c["unclear"]:
        text = f"{head}: no variant beats {the_baseline} {rule}."
    else:
        text = (f"{head}: no variant can be judged against {the_baseline}: with fewer than 2 seeds there "
                "are no error bars, so no variant is shown to beat it (run with --seeds 0 1 2).")
        return text
    if c["worse"]:
        text += f" Worse than {the_baseline} {rule}: {listing(c['worse'])}."
    if c["unclear"]:
        text += f" Within the combined std: {', '.join(c['unclear'])}."
    if c["unjudged"]:
        text += f" Not judged (fewer than 2 seeds, no error bar): {', '.join(c['unjudged'])}."
    return text


# --- figures --------------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _panel_keys(summaries: dict[str, dict[str, dict]], keys: list[str]) -> list[tuple[str, str, bool]]:
    return [(label, key, low) for label, key, low in METRICS
            if key in keys and any(s.get(key, {}).get("mean") is not None for s in summaries.values())]


def plot_bars(summaries: dict[str, dict[str, dict]], baseline: str, path: Path, title: str,
              keys: tuple[str, ...] = ("fid_evaluator", "kid_evaluator", "fid_inception")) -> Path:
    """One panel per metric: a bar per variant at its mean over seeds with ± std error bars; the
    baseline's bar is grey and its mean a dashed line. A panel whose means span more than a factor
    of 20 uses a log scale."""
    panels = _panel_keys(summaries, list(keys))
    names = list(summaries)
    fig = _figure(max(3.5, 0.42 * len(names) + 1.2) * max(len(panels), 1), 4.4)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (label, key, lower) in zip(axes, panels):
        means = [summaries[n].get(key, {}).get("mean") for n in names]
        stds = [summaries[n].get(key, {}).get("std") or 0.0 for n in names]
        colours = ["0.55" if n == baseline else "C0" for n in names]
        ax.bar(range(len(names)), [m if m is not None else math.nan for m in means], yerr=stds, capsize=3,
               color=colours, error_kw={"elinewidth": 1})
        base = summaries.get(baseline, {}).get(key, {}).get("mean")
        if base is not None:
            ax.axhline(base, color="0.3", linestyle="--", linewidth=1)
        positive = [m for m in means if m is not None and m > 0]
        if positive and max(positive) > 20 * min(positive):  # a failing variant would flatten the rest
            ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_title(f"{label} ({'lower' if lower else 'higher'} is better)")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_sweep(section: Section, summaries: dict[str, dict[str, dict]], path: Path, title: str) -> Path:
    """Metric means ± std (error bars over seeds) against the swept value, one panel per metric."""
    panels = _panel_keys(summaries, ["fid_evaluator", "kid_evaluator", "precision_evaluator",
                                     "recall_evaluator", "fid_inception"])
    variants = sorted((v for v in section.variants if v.name in summaries), key=lambda v: v.value)
    xs = [v.value for v in variants]
    fig = _figure(3.6 * max(len(panels), 1), 3.6)
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (label, key, lower) in zip(axes, panels):
        stats = [summaries[v.name].get(key, {}) for v in variants]
        ax.errorbar(xs, [s.get("mean", math.nan) if s.get("mean") is not None else math.nan for s in stats],
                    yerr=[s.get("std") or 0.0 for s in stats], marker="o", capsize=3)
        if section.logx:
            ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set_xlabel(section.param)
        ax.set_title(f"{label} ({'lower' if lower else 'higher'} is better)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# --- the experiments --------------------------------------------------------------------------------

def training_steps(config: Config) -> int:
    """Optimiser steps of a whole run: epochs × full batches of the training split (GANs drop the last)."""
    return config.train.epochs * (len(load_split(config.data, "train")) // config.train.batch_size)


def compare_sections(args, common: list[str]) -> list[Section]:
    """Seed question 7: FCGAN against DCGAN, same images (size ``--image-size``), epochs and batch size."""
    shared = (f"data.image_size={args.image_size}", f"train.batch_size={args.batch_size or 128}")
    variants = [Variant("FCGAN", CONFIGS / "fcgan-mnist.yaml", shared),
                Variant("DCGAN", CONFIGS / "dcgan-mnist.yaml", shared)]
    return [Section("architecture", baseline="FCGAN", variants=variants)]


def ablation_sections(args, common: list[str]) -> list[Section]:
    """Each trick toggled on its own against the base config (whose trick settings are the baseline)."""
    base = Path(args.config)
    anneal = training_steps(load_config(base, common))
    tricks = {
        "baseline": (),
        "label smoothing 0.9": ("model.label_smoothing=0.9",),
        "label flips p=0.05": ("model.label_flip_prob=0.05",),
        "instance noise 0.1 annealed": ("model.instance_noise=0.1", f"model.instance_noise_anneal_steps={anneal}"),
        "mixed real+fake D batch": ("model.separate_batches=false",),
        "separate D batches": ("model.separate_batches=true",),
        "d_steps=2": ("model.d_steps=2",),
        "g_steps=2": ("model.g_steps=2",),
        "DiffAugment": ("model.diffaug=color,translation,cutout",),
        "spectral norm": ("model.spectral_norm=true",),
        "EMA G 0.999": ("model.ema_decay=0.999",),
        "LSGAN loss": ("model.loss=lsgan",),
        "hinge loss": ("model.loss=hinge",),
    }
    # The toggle that equals the base config's own setting would duplicate the baseline: drop it.
    separate = load_config(base, common).model.separate_batches
    tricks.pop("separate D batches" if separate else "mixed real+fake D batch")
    variants = [Variant(name, base, overrides) for name, overrides in tricks.items()]
    return [Section("tricks", baseline="baseline", variants=variants)]


def noise_sections(args, common: list[str]) -> list[Section]:
    """Seed question 6: latent dimension sweep and instance-noise σ sweep (annealed to 0 over the run)."""
    base = Path(args.config)
    config = load_config(base, common)
    dims = sorted(set(args.latent_dims))
    latent = [Variant(f"latent_dim={d}", base, (f"model.latent_dim={d}",), value=d) for d in dims]
    default_dim = config.model.latent_dim
    anneal = training_steps(config)
    sigmas = sorted(set(args.sigmas))
    noise = [Variant(f"sigma={s:g}", base, (f"model.instance_noise={s:g}", f"model.instance_noise_anneal_steps={anneal}")
                     if s > 0 else ("model.instance_noise=0",), value=s) for s in sigmas]
    return [Section("latent_dim", baseline=f"latent_dim={default_dim if default_dim in dims else dims[-1]}",
                    variants=latent, param="latent dimension", logx=True),
            Section("instance_noise", baseline=f"sigma={0 if 0 in sigmas else sigmas[0]:g}", variants=noise,
                    param="instance noise σ at step 0 (annealed to 0)")]


EXPERIMENTS = {"compare": compare_sections, "ablation": ablation_sections, "noise": noise_sections}


# --- driver ---------------------------------------------------------------------------------------

def common_overrides(args, config_path: Path) -> list[str]:
    """Overrides every run of the invocation shares: budget, eval settings, smoke sizes, then ``--set``."""
    out = ["train.progress=false", f"train.epochs={args.epochs}", f"eval.num_samples={args.num_samples}",
           f"eval.inception={'true' if args.inception else 'false'}"]
    if args.limit:
        out.append(f"data.limit={args.limit}")
    if args.batch_size:
        out.append(f"train.batch_size={args.batch_size}")
    if args.threads:
        out.append(f"train.num_threads={args.threads}")
    if args.smoke:
        arch = load_config(config_path).model.arch
        out += SMOKE_DATA + SMOKE_NETS[arch]
    return out


def run_overrides(args, variant: Variant) -> list[str]:
    """Every override of ``variant``'s runs in this invocation: the shared ones, the variant's, then ``--set``."""
    return [*common_overrides(args, variant.config), *variant.overrides, *args.set]


def run_sections(sections: list[Section], args, command: str = "") -> None:
    """Train and evaluate every (variant, seed) of ``sections`` (or of ``--variants``), filling ``runs``.

    A variant whose full config equals one already run in this invocation (e.g. the noise sweeps'
    two baselines, both the base config) reuses that run instead of training it again. Each record
    names the ``command`` that made it.
    """
    todo = [(s, v, seed) for s in sections for v in s.variants for seed in args.seeds
            if not args.variants or v.name in args.variants or v.slug in args.variants]
    by_config: dict[str, dict] = {}
    for i, (section, variant, seed) in enumerate(todo, 1):
        overrides = run_overrides(args, variant)
        identity = json.dumps(load_config(variant.config, [*overrides, f"seed={seed}"]).to_dict(), sort_keys=True)
        started = time.perf_counter()
        if identity in by_config:
            record = by_config[identity] | {"skipped": True}
        else:
            run_dir = Path(args.runs) / section.name / variant.slug / f"seed{seed}"
            record = run_variant(variant.config, overrides, seed, run_dir)
            record |= {"overrides": overrides, "config": str(variant.config), "command": command}
            by_config[identity] = record
        section.runs.setdefault(variant.name, []).append(record)
        fid = record["metrics"].get("fid_evaluator", record["metrics"].get("fid_inception"))
        state = "already done" if record["skipped"] else f"{time.perf_counter() - started:.1f} s"
        fid_text = "n/a" if fid is None else f"{fid:.4g}"
        print(f"[{i}/{len(todo)}] {section.name}/{variant.name} seed {seed}: {state}; FID {fid_text}", flush=True)


def keep_previous_results(sections: list[Section], args, path: Path) -> list[str]:
    """Fill the variants this invocation did not run from an earlier ``results.json`` at ``path``.

    A kept run must have been made with exactly the overrides this invocation would use for it
    (same budget, eval settings and ``--set``) and the variant must have a run for every seed of
    ``--seeds``; otherwise :class:`SystemExit` names the variant and the difference. Runs keep the
    command that made them (older files: the file's own command). Returns the kept variants' names.
    """
    if not path.is_file():
        raise SystemExit(f"--keep-results: {path} does not exist (nothing to keep)")
    previous = json.loads(path.read_text())
    old_sections = {s["name"]: {v["name"]: v for v in s["variants"]} for s in previous.get("sections", [])}
    kept = []
    for section in sections:
        for variant in section.variants:
            old = old_sections.get(section.name, {}).get(variant.name)
            if variant.name in section.runs or old is None:
                continue
            runs = {run["seed"]: run for run in old["runs"]}
            missing = [seed for seed in args.seeds if seed not in runs]
            if missing:
                raise SystemExit(f"--keep-results: {section.name}/{variant.name} in {path} has no run for seed(s) "
                                 f"{missing}; run it again (--variants '{variant.name}')")
            wanted = run_overrides(args, variant)
            for seed in args.seeds:
                if runs[seed].get("overrides") != wanted:
                    raise SystemExit(f"--keep-results: {section.name}/{variant.name} seed {seed} in {path} was made "
                                     f"with overrides {runs[seed].get('overrides')}, not {wanted}; run it again "
                                     f"(--variants '{variant.name}')")
            section.runs[variant.name] = [{"command": previous["command"], **runs[seed]} for seed in args.seeds]
            kept.append(variant.name)
    return kept


def _extra_columns(runs: list[dict], params: bool) -> dict[str, str]:
    train_s = mean_std([r["train_seconds"] for r in runs])
    d_real = mean_std([r["last_epoch"].get("train/d_real") for r in runs])
    d_fake = mean_std([r["last_epoch"].get("train/d_fake") for r in runs])
    cols = {"D(real) / D(fake), last epoch": f"{format_mean_std(d_real)} / {format_mean_std(d_fake)}",
            "train s": format_mean_std(train_s)}
    if params and runs:
        counts = runs[0]["params"]
        cols["params G / D"] = f"{counts.get('generator', 0):,} / {counts.get('discriminator', 0):,}"
    return cols


def write_results(experiment: str, sections: list[Section], args, command: str) -> tuple[Path, Path]:
    """``results.json``, ``results.md`` and the figures of ``sections`` into ``args.out``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    made_by = list(dict.fromkeys(run.get("command") or command for section in sections
                                 for runs in section.runs.values() for run in runs)) or [command]
    if len(made_by) == 1:
        lines = [f"# GAN experiment: {experiment}", "", "Command:", "", f"    {made_by[0]}", ""]
    else:  # --keep-results: rows from several invocations
        lines = [f"# GAN experiment: {experiment}", "", "Commands (each run's own is in results.json; "
                 "the last one kept the other rows with --keep-results):", "",
                 *[f"    {c}" for c in made_by], ""]
    if args.smoke:
        lines += [("**Smoke settings** (a few hundred images, one epoch, tiny networks, 128 samples): "
                   "the numbers only show that the pipeline runs; they say nothing about the models."), ""]
    seeds = ", ".join(map(str, args.seeds))
    lines += [f"Budget: {args.epochs} epoch(s) on {'the first ' + str(args.limit) if args.limit else 'all'} "
              f"MNIST training images; seeds {seeds}; {args.num_samples} generated samples per run against "
              "the full MNIST test split. FID/KID/precision/recall/IS on the evaluator classifier's 128-d "
              "features" + (" and TF-Inception pool3 FID/KID" if args.inception else "") + ". "
              "Cells: mean ± sample std over seeds (no ± with one seed). KID std is across seeds, "
              "not KID's own subset std. D(real)/D(fake): mean discriminator output in the last "
              "epoch (probabilities for the BCE loss, raw scores for LSGAN/hinge).", ""]
    record: dict[str, Any] = {"experiment": experiment, "command": command, "smoke": args.smoke,
                              "settings": {k: v for k, v in vars(args).items() if k != "func"}, "sections": []}
    for section in sections:
        names = [v.name for v in section.variants if v.name in section.runs]
        summaries = {n: summarize(section.runs[n]) for n in names}
        seeds_n = {n: len(section.runs[n]) for n in names}
        extra = {n: _extra_columns(section.runs[n], params=True) for n in names}
        lines += [f"## {section.name} (baseline: {section.baseline})", "",
                  results_table(summaries, seeds_n, extra), ""]
        for label, key, lower in METRICS:
            if key in VERDICT_KEYS and any(key in s for s in summaries.values()):
                lines += [verdict(summaries, section.baseline, key, label, lower), ""]
        bars = plot_bars(summaries, section.baseline, out / f"{section.name}_bars.png",
                         title=f"{experiment}: {section.name} (mean ± std over seeds; grey = baseline)")
        lines += [f"![{section.name}]({bars.name})", ""]
        figures = [bars.name]
        if section.param is not None and summaries:
            sweep = plot_sweep(section, summaries, out / f"{section.name}_sweep.png",
                               title=f"{experiment}: metrics vs {section.param} (mean ± std over seeds)")
            lines += [f"![{section.name} sweep]({sweep.name})", ""]
            figures.append(sweep.name)
        variants = {v.name: v for v in section.variants}
        record["sections"].append({
            "name": section.name, "baseline": section.baseline, "param": section.param, "figures": figures,
            "variants": [{"name": n, "config": str(variants[n].config), "overrides": list(variants[n].overrides),
                          "value": variants[n].value, "summary": summaries[n], "runs": section.runs[n]}
                         for n in names],
            "vs_baseline": {key: compare_to_baseline(summaries, section.baseline, key, lower)
                            for _, key, lower in METRICS if key in VERDICT_KEYS},
        })
    # every run of this table (those still on this computer) in one HTML report: curves, previews, figures
    run_dirs = [d for d in dict.fromkeys(run.get("run_dir") for section in sections for runs in section.runs.values()
                                         for run in runs) if d and Path(d).is_dir()]
    if run_dirs:
        report = write_report(run_dirs, out / "report.html", title=f"GAN experiment: {experiment}")
        lines += [f"All runs, with their curves, previews and figures: [{report.name}]({report.name})", ""]
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    md_path.write_text("\n".join(lines))
    return json_path, md_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="experiment", required=True)
    for name, help_text in (("compare", "FCGAN vs DCGAN (seed question 7)"),
                            ("ablation", "each trick on/off against the baseline"),
                            ("noise", "latent dimension and instance-noise sweeps (seed question 6)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--seeds", type=int, nargs="+", help=f"default {DEFAULTS['seeds']} (smoke: {SMOKE['seeds']})")
        p.add_argument("--epochs", type=int, help=f"default {DEFAULTS['epochs']} (smoke: {SMOKE['epochs']})")
        p.add_argument("--limit", type=int, help="data.limit: first N training images (default all; smoke 256)")
        p.add_argument("--num-samples", type=int, help="eval.num_samples (default 10000; smoke 128)")
        p.add_argument("--inception", action="store_true", help="also TF-Inception FID/KID (slow on CPU)")
        p.add_argument("--threads", type=int, help="train.num_threads (default: torch's; smoke 1)")
        p.add_argument("--batch-size", type=int, help="train.batch_size (compare: default 128 for both)")
        p.add_argument("--out", help=f"results: tables and figures (default benchmarks/results/gan_{name})")
        p.add_argument("--runs", help=f"run directories, checkpoints included (default runs/gan_{name}, not in git)")
        p.add_argument("--smoke", action="store_true", help="tiny settings for an end-to-end check")
        p.add_argument("--variants", nargs="+", help="train only these variants (names or directory names)")
        p.add_argument("--keep-results", action="store_true",
                       help="keep the rows of OUT/results.json that this invocation does not train "
                            "(same settings required), e.g. after re-running one variant with --variants")
        p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                       help="extra config overrides for every run, applied last")
        if name == "compare":
            p.add_argument("--image-size", type=int, default=32, help="data.image_size of both (default 32)")
        else:
            p.add_argument("--config", default=str(CONFIGS / "dcgan-mnist.yaml"), help="base config")
        if name == "noise":
            p.add_argument("--latent-dims", type=int, nargs="+", default=[2, 10, 100])
            p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    args = parser.parse_args(argv)
    defaults = SMOKE if args.smoke else DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = str(ROOT / "benchmarks" / "results" / f"gan_{args.experiment}")
    if args.runs is None:
        args.runs = str(ROOT / "runs" / f"gan_{args.experiment}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/gan_experiments.py", *argv])
    base = Path(getattr(args, "config", CONFIGS / "dcgan-mnist.yaml"))
    sections = EXPERIMENTS[args.experiment](args, common_overrides(args, base) + args.set)
    started = time.perf_counter()
    run_sections(sections, args, command)
    if args.keep_results:
        kept = keep_previous_results(sections, args, Path(args.out) / "results.json")
        print(f"kept from {Path(args.out) / 'results.json'}: {', '.join(kept) or 'nothing'}")
    json_path, md_path = write_results(args.experiment, sections, args, command)
    print(f"{md_path}\n{json_path}\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
