"""What this machine's CPU can do, and the precision ``train.precision=auto`` trains in.

bf16 pays only where the hardware multiplies bf16 natively: AVX512_BF16 (Cooper Lake, Zen 4 and
later) or AMX-BF16 tiles (Sapphire Rapids and later). On an AVX2-only CPU PyTorch emulates bf16
with conversions and it runs slower than fp32, so ``auto`` keeps fp32 there. Measured on this
project's Xeon (AMX-BF16), genlab's DCGAN step at 64 px: 96 images/s fp32, 212 bf16
(``benchmarks/speed.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

#: feature names as BENCHMARKS.md and ``genlab bench`` print them, with the torch probe of each
_FEATURES = {
    "AVX2": "_is_avx2_supported",
    "AVX-512": "_is_avx512_supported",
    "AVX512_BF16": "_is_avx512_bf16_supported",
    "AMX": "_is_amx_tile_supported",
}
#: /proc/cpuinfo flags of the same features (used where torch lacks a probe)
_FLAGS = {"AVX2": "avx2", "AVX-512": "avx512f", "AVX512_BF16": "avx512_bf16", "AMX": "amx_bf16"}


@dataclass(frozen=True)
class CPUInfo:
    """The CPU's model name, its logical core count and the vector features genlab's speed depends on."""

    name: str
    cores: int
    features: tuple[str, ...]  # subset of AVX2, AVX-512, AVX512_BF16, AMX, in that order

    @property
    def native_bf16(self) -> bool:
        """True if bf16 matrix products run natively (AVX512_BF16 or AMX), so bf16 autocast pays."""
        return "AVX512_BF16" in self.features or "AMX" in self.features

    def describe(self) -> str:
        """One line, e.g. ``Intel(R) Xeon(R) Processor, 2 cores, AVX2 AVX-512 AVX512_BF16 AMX``."""
        return f"{self.name}, {self.cores} cores, {' '.join(self.features) or 'no AVX2'}"


def _proc_cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not name:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu_info() -> CPUInfo:
    """This machine's :class:`CPUInfo` (torch's own feature probes, else ``/proc/cpuinfo`` flags)."""
    name, flags = _proc_cpuinfo()
    features = []
    for feature, probe in _FEATURES.items():
        check = getattr(torch.cpu, probe, None)
        present = bool(check()) if check is not None else _FLAGS[feature] in flags
        if present:
            features.append(feature)
    return CPUInfo(name or platform.processor() or platform.machine(), _cores(),
                   tuple(features))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to train in for ``train.precision=requested`` on ``device``, and why.

    ``fp32`` and ``bf16`` are kept as asked; ``auto`` is ``bf16`` on a CUDA device that supports it
    and on a CPU with native bf16 (AVX512_BF16 or AMX), ``fp32`` otherwise.
    """
    if requested != "auto":
        return requested, "set in the config"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} supports bf16"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no bf16"
    info = cpu_info()
    if info.native_bf16:
        native = " and ".join(f for f in ("AVX512_BF16", "AMX") if f in info.features)
        return "bf16", f"the CPU runs bf16 natively ({native})"
    return "fp32", "the CPU has no native bf16 (no AVX512_BF16 or AMX), where bf16 runs slower than fp32"
