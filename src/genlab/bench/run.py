"""``genlab bench``: the whole speed picture of this machine in one command.

Prints the CPU (name, cores, AVX2 / AVX-512 / AVX512_BF16 / AMX), the matmul and conv peaks per
dtype, then one row per benchmark case (each family's default config and the seed presets):
genlab's train step beside the plain fp32 eager step, FLOPs, achieved GFLOP/s and their share of the
conv peak of the dtype in use, the data pipeline's share of the step, peak memory, sampling
throughput; and FID feature extraction beside a plain fp32 eager pass. ``--quick`` runs the
default configs at batches of at most :data:`QUICK_MAX_BATCH` with few steps, so that the ratios
still come from several alternating blocks, in under 2 minutes on a 2-core CPU (the table shows
the batch each row used).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from genlab.bench.speed import compute_peaks, train_step_speed
from genlab.core.hardware import cpu_info
from genlab.errors import GenlabError


@dataclass(frozen=True)
class Case:
    """One benchmark row: a config file (under the configs folder) with overrides."""

    label: str
    config: str
    overrides: tuple[str, ...] = ()
    quick: bool = True  # also in --quick


CASES = (
    Case("VAE, lab-report (MNIST)", "vae-mnist.yaml"),
    Case("CVAE, lab-report (MNIST)", "cvae-mnist.yaml", quick=False),
    Case("FCGAN, lab-report (MNIST 56 px)", "fcgan-mnist.yaml"),
    Case("DCGAN, Radford (Twemoji 64 px)", "dcgan-emoji.yaml"),
    Case("DCGAN, lab-report (Twemoji 96×96×3)", "dcgan-emoji.yaml", ("model.preset=lab-report", "data.image_size=96")),
    Case("CycleGAN, ResNet-6 (emoji 64 px)", "cyclegan-emoji.yaml"),
    Case("CycleGAN, U-Net resize decoder (emoji 64 px)", "cyclegan-emoji.yaml",
         ("model.generator=unet", "model.upsample=resize"), quick=False),
    Case("StackGAN Stage-I (emoji 64 px)", "stackgan-emoji.yaml", ("data.image_size=64",)),
    Case("StackGAN Stage-I, CPU config (emoji 32 px)", "stackgan-emoji.yaml", quick=False),
)


#: --quick: batches above this are cut to it, so that the slow plain fp32 steps of the 96 px
#: DCGAN (7 s at batch 128 on one Xeon core) leave time for three alternating blocks per case
QUICK_MAX_BATCH = 32
#: (timed steps, steps per block) per case: quick = 3 blocks of 2, full = 4 blocks of 5
QUICK_STEPS, QUICK_BLOCK = 6, 2
FULL_STEPS, FULL_BLOCK = 20, 5


def configs_dir() -> Path:
    """The repository's ``configs/`` folder (genlab installed from a checkout, as the README's setup does)."""
    for candidate in (Path(__file__).resolve().parents[3] / "configs", Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    raise GenlabError("genlab bench needs the configs/ folder of a genlab checkout; run it from the repository "
                      "root or pass --configs DIR")


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def _share(row: dict, peaks: dict) -> str:
    """``" (12 %)"``: the row's GFLOP/s as a share of the conv peak of its dtype, or ``""`` if not measured."""
    peak = peaks.get(row["precision"])
    return f" ({100 * row['genlab_gflops'] / peak['conv']:.0f} %)" if peak else ""


def _block_range(row: dict) -> str:
    """``" (1.12–1.25)"``: the lowest and highest ratio of one block pair, or ``""`` with fewer than two blocks
    (results written before the range was kept have none)."""
    ratios = row.get("block_ratios") or []
    return f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""


def markdown(result: dict) -> str:
    """The results as the Markdown table that BENCHMARKS.md shows."""
    peaks = result["peaks"]
    compile_note = " genlab steps with train.compile=true (torch.compile; compile time per case below);" \
        if result.get("compile") else ""
    lines = [f"CPU: {result['cpu']}; {_threads(result['threads'])};{compile_note} peaks GFLOP/s: "
             + "; ".join(f"{d} matmul {p['matmul']:.0f}, conv {p['conv']:.0f}" for d, p in peaks.items()), "",
             "| case | batch | precision | genlab img/s | plain fp32 img/s | × (range over blocks) | GFLOP/step | genlab GFLOP/s "
             "(% conv peak of its precision) | data % | peak MiB | sample img/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["train"]:
        plain = f"{row['plain_fp32_eager']:.1f}" if "plain_fp32_eager" in row else "—"
        ratio = f"**{row['ratio']:.2f}×**{_block_range(row)}" if "ratio" in row else "—"
        mem = f"{row['peak_rss_mib']:.0f}" if row.get("peak_rss_mib") else "—"
        sample = f"{row['sample_images_per_s']:.0f}" if "sample_images_per_s" in row else "—"
        lines.append(f"| {row['label']} | {row['batch_size']} | {row['precision']} | {row['genlab']:.1f} | {plain} | "
                     f"{ratio} | {row['gflop_per_step']:.2f} | {row['genlab_gflops']:.0f}{_share(row, peaks)} "
                     f"| {100 * row['data_share']:.1f} | {mem} | {sample} |")
    compiled_rows = [row for row in result["train"] if "compile_s" in row]
    if compiled_rows:
        lines += ["", "| case | first (compiling) step | genlab eager img/s | compiled / eager | compiling pays after |",
                  "|---|---|---|---|---|"]
        for row in compiled_rows:
            pays = row["compile_pays_after_steps"]
            lines.append(f"| {row['label']} | {row['compile_s']:.0f} s | {row['genlab_eager']:.1f} | "
                         f"{row['compile_speedup']:.2f}× | {'never' if pays is None else f'{pays:.0f} steps'} |")
    feats = result.get("features")
    if feats:
        lines += ["", f"FID features (TF-Inception, {feats['images']} images): genlab {feats['genlab']:.1f} img/s "
                      f"({feats.get('precision', '?')}), plain fp32 eager {feats['plain_fp32_eager']:.1f} img/s, "
                      f"**{feats['ratio']:.2f}×**"]
    return "\n".join(lines)


def run_bench(*, quick: bool = False, threads: int | None = None, configs: Path | None = None,
              steps: int | None = None, features: bool = True, only: list[str] | None = None,
              compile: bool = False, progress=print) -> dict:
    """Measure every case (``quick``: the quick ones with few steps; ``compile``: genlab's steps with
    ``train.compile=true``); returns the results dict."""
    available = [c for c in CASES if c.quick or not quick]
    cases = [c for c in available if not only or any(o.lower() in c.label.lower() for o in only)]
    if not cases:
        raise GenlabError(f"genlab bench: no case matches --only {' '.join(only or [])!r}"
                          f"{' with --quick' if quick else ''}; cases{' with --quick' if quick else ''}: "
                          f"{'; '.join(c.label for c in available)}")
    if threads:
        torch.set_num_threads(threads)
    folder = configs or configs_dir()
    started = time.perf_counter()
    info = cpu_info()
    result = {"cpu": info.describe(), "features_present": list(info.features), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "quick": quick, "compile": compile}
    progress(f"CPU: {result['cpu']}; torch {torch.__version__}, {_threads(result['threads'])}")
    # bf16 only where it is native: no case trains in it elsewhere (auto → fp32), and emulated it takes minutes
    result["peaks"] = compute_peaks(0.3 if quick else 2.0, ("fp32", "bf16") if info.native_bf16 else ("fp32",))
    for dtype, peak in result["peaks"].items():
        progress(f"peak {dtype}: matmul {peak['matmul']:.0f} GFLOP/s, conv {peak['conv']:.0f} GFLOP/s")
    result["train"] = []
    for case in cases:
        path = folder / case.config
        if not path.is_file():
            raise GenlabError(f"genlab bench: config {path} not found (case {case.label!r})")
        n_steps = steps or (QUICK_STEPS if quick else FULL_STEPS)
        block = min(QUICK_BLOCK if quick else FULL_BLOCK, n_steps)
        row = {"label": case.label} | train_step_speed(path, list(case.overrides), steps=n_steps, block=block,
                                                       max_batch_size=QUICK_MAX_BATCH if quick else None,
                                                       sample_seconds=0.3 if quick else 1.0,
                                                       # explicit both ways: a config's own train.compile
                                                       # must not decide what --compile means
                                                       genlab_only=[f"train.compile={str(compile).lower()}"])
        result["train"].append(row)
        ratio = f", plain {row['plain_fp32_eager']:.1f} ({row['ratio']:.2f}×)" if "ratio" in row else ", no plain baseline"
        compiled = f", compiled in {row['compile_s']:.0f} s" if "compile_s" in row else ""
        progress(f"{case.label}: genlab {row['genlab']:.1f} images/s ({row['precision']}{compiled}){ratio}")
    if features:
        from genlab.bench.features import feature_extraction_speed

        result["features"] = feature_extraction_speed(num_images=32 if quick else 128, blocks=1 if quick else 2)
        progress(f"FID features: genlab {result['features']['genlab']:.1f} images/s, plain "
                 f"{result['features']['plain_fp32_eager']:.1f} ({result['features']['ratio']:.2f}×)")
    result["seconds"] = time.perf_counter() - started
    return result


def write_results(result: dict, out: Path) -> Path:
    """``out`` (JSON) and the Markdown table beside it (``.md``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result) + "\n")
    return out
