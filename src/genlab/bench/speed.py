"""Train-step, sampling and compute-peak measurements behind ``genlab bench``.

For one config, :func:`train_step_speed` times genlab's real train step — drawing the batch from
the family's data source included, in the precision ``train.precision`` resolves to, channels-last
— beside the family's plain fp32 eager step (:mod:`genlab.bench.plain`) on fresh copies of the same
networks, in blocks that alternate between the two. genlab's blocks keep freed memory for reuse as
its training does (:mod:`genlab.core.allocator`), the plain blocks run with glibc's own behaviour
(the kept memory trimmed first). It also reports:

* FLOPs per genlab step (``torch.utils.flop_counter``: matmuls and convolutions, forward and
  backward, counted as 2 FLOPs per multiply-add) and the GFLOP/s both loops achieve;
* the share of genlab's step spent drawing the batch (the data pipeline);
* peak resident memory while stepping (Linux: the process's high-water mark, reset first);
* sampling throughput (images/s of ``sample``/``translate``, as ``genlab sample`` runs it);
* with ``train.compile=true`` among ``genlab_only``: the first compiled step's time (``compile_s``), the
  same step eager on a twin model in the same blocks (``genlab_eager``, ``compile_speedup``) and the
  number of steps after which compiling has paid for itself (``compile_pays_after_steps``; None if
  the compiled step is not faster).

:func:`compute_peaks` measures what the CPU can do at all, per dtype: a large matmul and a
DCGAN-sized convolution, in GFLOP/s, so a step's GFLOP/s can be read as a share of them.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab import registry
from genlab.bench.plain import PLAIN_STEPS, PlainStep
from genlab.config import load_config
from genlab.core.allocator import reuse_freed_memory
from genlab.core.hardware import resolve_precision
from genlab.core.noise import SharedNoise
from genlab.data.datasets import load_source
from genlab.data.sources import in_memory_format
from genlab.nn.forms import as_pytorch_layers
from genlab.nn.layers import direct_convolutions, reuse_winograd_weights
from genlab.registry import build_model

CPU = torch.device("cpu")


# --- peaks ------------------------------------------------------------------------------------------
def _rate(fn, flops: float, seconds: float) -> float:
    """GFLOP/s of ``fn`` (``flops`` per call), repeated for at least ``seconds`` after a warm-up call."""
    fn()
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        fn()
        calls += 1
    return flops * calls / (time.perf_counter() - started) / 1e9


PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@torch.inference_mode()
def compute_peaks(seconds: float = 1.0, dtypes: tuple[str, ...] = tuple(PEAK_DTYPES)) -> dict[str, dict[str, float]]:
    """Achievable GFLOP/s per dtype (of ``fp32``, ``bf16``): ``matmul`` (2048² × 2048) and ``conv``
    (3×3, 256 → 256 channels, 32×32 maps, batch 16, channels-last: the shape of a DCGAN's middle
    layers), forward only, each repeated for ``seconds``. Leave ``bf16`` out on a CPU without native
    bf16: its emulated 2048² matmul takes ~90 s per call there (AVX2, one thread)."""
    out = {}
    for name in dtypes:
        dtype = PEAK_DTYPES[name]
        n = 2048
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        batch, ch, size = 16, 256, 32
        x = torch.randn(batch, ch, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(ch, ch, 3, padding=1, bias=False).to(dtype=dtype, memory_format=torch.channels_last)
        out[name] = {"matmul": _rate(functools.partial(torch.mm, a, b), 2.0 * n ** 3, seconds),
                     "conv": _rate(functools.partial(conv, x), 2.0 * batch * ch * ch * 9 * size * size, seconds)}
    return out


# --- memory -----------------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    """Reset this process's resident-memory high-water mark (Linux ≥ 4.0); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float | None:
    """``VmHWM`` in MiB, or None off Linux: the high-water mark :func:`_reset_peak_rss` resets (the
    loop's ``peak_rss_mb`` reads ``ru_maxrss``, which no reset reaches)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


def median_ms(fn: Callable[[], object], reps: int, warmups: int = 3) -> float:
    """Median wall-clock milliseconds of ``reps`` calls of ``fn`` after ``warmups`` untimed ones (the
    layer-by-layer A/B scripts in ``benchmarks/``)."""
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[reps // 2] * 1e3


# --- one config ---------------------------------------------------------------------------------------
def time_alternating(runs: dict[str, Callable[[], object]], blocks: int) -> dict[str, list[float]]:
    """Wall-clock seconds of ``blocks`` calls of each run, the runs interleaved block by block.

    Block i calls every run once, in the given order for even i and reversed for odd i (A B, B A,
    A B, …), so that other load on the machine, and whatever one run leaves in the caches for the
    next, hits all runs alike. Returns each run's per-block seconds, in block order.
    """
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for block in range(blocks):
        order = list(runs.items()) if block % 2 == 0 else list(reversed(runs.items()))
        for name, run in order:
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return seconds


@contextmanager
def _timer(totals: dict[str, float], key: str):
    started = time.perf_counter()
    yield
    totals[key] = totals.get(key, 0.0) + time.perf_counter() - started


def _sampler(model, family, batch: dict[str, torch.Tensor], n: int):
    """A callable producing ``n`` images the way ``genlab sample`` (or ``translate``) does, or None."""
    if "translate" in family.abilities:
        images = ((batch["image"][:n] + 1.0) / 2.0).clamp(0.0, 1.0)  # the source's [-1, 1] → translate's [0, 1]
        return lambda: model.translate(images, "AtoB")
    if "text" in family.abilities:
        return lambda: model.sample(n, text="a red apple", generator=torch.Generator().manual_seed(0))
    if "sample" in family.abilities:
        return lambda: model.sample(n, generator=torch.Generator().manual_seed(0))
    return None


def prepared_model(cfg, data):
    """A fresh model of ``cfg`` laid out as training lays it out (``train.channels_last``), with shared
    noise seeded 0 and a constant learning rate, and ``step(index, totals)``: one genlab train step on
    items ``index`` of ``data``, the batch drawn and laid out as the loop does (that time is added to
    ``totals["genlab_data"]``)."""
    model = build_model(cfg)
    model.noise = SharedNoise(0)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    model.set_lr_schedule("constant", 1)
    done = [0]

    def step(index: torch.Tensor, totals: dict[str, float]) -> None:
        with _timer(totals, "genlab_data"):
            batch = in_memory_format(data.batch(index, model.noise, CPU), layout)
        with reuse_winograd_weights():  # as the training loop runs a step
            model.train_step(batch, done[0])
        done[0] += 1

    return model, step


def prepared_plain_step(config: str | Path, overrides: list[str] = ()) -> PlainStep | None:
    """The family's plain fp32 eager step (:mod:`genlab.bench.plain`) on a fresh model of ``config``
    with PyTorch's own layers (:func:`genlab.nn.forms.as_pytorch_layers`), contiguous; ``None`` for a
    family without one (and for StackGAN Stage-II)."""
    cfg = load_config(config, [*overrides, "train.precision=fp32"])
    plain = PLAIN_STEPS.get(cfg.model.family)
    if plain is None or (cfg.model.family == "stackgan" and cfg.model.stage != 1):
        return None
    model = build_model(cfg)
    as_pytorch_layers(model)  # the textbook layers, not genlab's forms
    return plain(model, cfg)


def plain_batch(data, index: torch.Tensor, noise: SharedNoise) -> dict[str, torch.Tensor]:
    """Items ``index`` of ``data`` as the plain loop takes them: built once, contiguous."""
    return {k: v.contiguous() for k, v in data.batch(index, noise, CPU).items()}


def train_step_speed(config: str | Path, overrides: list[str] = (), *, steps: int = 10, block: int = 5,
                     batch_size: int | None = None, max_batch_size: int | None = None,
                     genlab_only: list[str] = (), sample_images: int = 64, sample_seconds: float = 1.0) -> dict:
    """Images/s of genlab's train step beside the family's plain fp32 eager step, same networks, same process.

    Args:
        config, overrides: the config file and ``key=value`` overrides for both loops' networks.
        steps: timed steps per loop (rounded up to whole blocks); ``block`` steps per block.
        batch_size: the batch (default the config's ``train.batch_size``); ``max_batch_size`` caps it.
        genlab_only: overrides for genlab's loop only (e.g. ``train.precision=fp32``).
        sample_images: images per sampling call, repeated for at least ``sample_seconds``.

    Returns:
        A flat dict: ``genlab`` and ``plain_fp32_eager`` images/s, ``ratio`` (and ``block_ratios``, the
        ratio of each block pair, which the Markdown table shows as a range), ``precision``,
        ``gflop_per_step``, ``genlab_gflops``, ``plain_gflops``, ``data_share``, ``peak_rss_mib``,
        ``sample_images_per_s``, and what was run.
    """
    size = [f"train.batch_size={batch_size}"] if batch_size else []
    cfg = load_config(config, [*overrides, *size, *genlab_only])
    if max_batch_size is not None and cfg.train.batch_size > max_batch_size:
        size = [f"train.batch_size={max_batch_size}"]
        cfg = load_config(config, [*overrides, *size, *genlab_only])
    family = registry.get(cfg.model.family)
    precision, _ = resolve_precision(cfg.train.precision, CPU)
    data = load_source(cfg.data, "train", family.data_kind)
    n = cfg.train.batch_size
    model, step = prepared_model(cfg, data)
    blocks = max(1, -(-steps // block))
    timed_steps = blocks * block
    indices = [torch.randint(0, len(data), (n,), generator=torch.Generator().manual_seed(i)) for i in range(block)]

    plain_step = prepared_plain_step(config, [*overrides, *size])
    plain_inputs = [plain_batch(data, i, SharedNoise(k)) for k, i in enumerate(indices)]

    totals: dict[str, float] = {}

    # genlab's steps keep freed memory for reuse as its training does (train.reuse_freed_memory); the
    # plain loop runs with the C library's own behaviour, as a script of its own would
    def genlab_block():
        reuse_freed_memory(cfg.train.reuse_freed_memory)
        for index in indices:
            step(index, totals)

    def plain_block():
        reuse_freed_memory(False)
        for batch in plain_inputs:
            plain_step(batch)

    # one eager step, also a warm-up; FLOPs of the textbook convolutions (not of the Winograd form)
    with FlopCounterMode(display=False) as counter, direct_convolutions():
        step(indices[0], {})
    flops = counter.get_total_flops()
    compile_s, eager_step = None, None
    if cfg.train.compile:  # the timed steps run compiled (the first one compiles), beside an eager twin
        _, eager_step = prepared_model(cfg, data)
        eager_step(indices[0], {})
        model.compile_networks()
        started = time.perf_counter()
        step(indices[0], {})
        compile_s = time.perf_counter() - started

    def eager_block():
        reuse_freed_memory(cfg.train.reuse_freed_memory)
        for index in indices:
            eager_step(index, {})

    rss_reset = _reset_peak_rss()
    genlab_block()
    if plain_step:
        plain_block()
    totals.clear()  # from here on it gathers genlab's data time ("genlab_data")
    runs = {"genlab": genlab_block, **({"plain": plain_block} if plain_step else {}),
            **({"eager": eager_block} if eager_step else {})}
    block_seconds = time_alternating(runs, blocks)
    totals |= {name: sum(seconds) for name, seconds in block_seconds.items()}
    images = timed_steps * n
    result = {"config": Path(config).name, "overrides": list(overrides), "genlab_only": list(genlab_only),
              "family": cfg.model.family, "batch_size": n, "steps": timed_steps, "precision": precision,
              "threads": torch.get_num_threads(), "gflop_per_step": flops / 1e9,
              "genlab": images / totals["genlab"], "data_share": totals["genlab_data"] / totals["genlab"]}
    result["genlab_gflops"] = flops * timed_steps / totals["genlab"] / 1e9
    if compile_s is not None:
        compiled, eager = totals["genlab"] / timed_steps, totals["eager"] / timed_steps  # seconds per step
        result |= {"compile_s": compile_s, "genlab_eager": images / totals["eager"], "compile_speedup": eager / compiled,
                   "compile_pays_after_steps": (compile_s - compiled) / (eager - compiled) if eager > compiled else None}
    if plain_step:
        result["plain_fp32_eager"] = images / totals["plain"]
        result["ratio"] = result["genlab"] / result["plain_fp32_eager"]
        # each block pair's ratio: their spread is the run's own measure of the machine's noise
        result["block_ratios"] = [plain / ours for ours, plain in zip(block_seconds["genlab"], block_seconds["plain"])]
        result["plain_gflops"] = flops * timed_steps / totals["plain"] / 1e9
    result["peak_rss_mib"] = _peak_rss_mib() if rss_reset else None

    model.eval()
    count = min(sample_images, n)
    sampler = _sampler(model, family, plain_inputs[0], count)
    if sampler is not None:
        sampler()
        started, calls = time.perf_counter(), 0
        while calls < 2 or time.perf_counter() - started < sample_seconds:
            sampler()
            calls += 1
        result["sample_images_per_s"] = count * calls / (time.perf_counter() - started)
    return result
