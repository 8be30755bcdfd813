"""What this machine's CPU can do, and the precision ``train.precision=auto`` trains in.

bf16 pays only where the hardware multiplies bf16 natively: AVX512_BF16 (Cooper Lake, Zen 4 and
later) or AMX-BF16 tiles (Sapphire Rapids and later). On an AVX2-only CPU PyTorch emulates bf16
with conversions and it runs slower than fp32, so ``auto`` keeps fp32 there. Measured on this
project's Xeon (AMX-BF16), genlab's DCGAN step at 64 px: 96 images/s fp32, 212 bf16
(``benchmarks/speed.py``, BENCHMARKS.md).

The features are the ones this process may use: the hardware's, less what the environment caps.
``ONEDNN_MAX_CPU_ISA`` caps oneDNN (convolutions, bf16 matrix products) and ``ATEN_CPU_CAPABILITY``
caps PyTorch's own vector kernels, so ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` makes an
AVX-512/AMX machine train as an AVX2-only CPU does (``auto`` → fp32), which is how BENCHMARKS.md
measures the AVX2 rows on the Xeon.
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
#: ``ONEDNN_MAX_CPU_ISA`` values, lowest first (oneDNN's "CPU dispatcher control"; the AVX10 names
#: are aliases of the AVX512_CORE_FP16 / AMX ones), and the lowest value that allows each feature
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
                "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "ALL")
_ONEDNN_ALIASES = {"AVX10_1_512": "AVX512_CORE_FP16", "AVX10_1_512_AMX": "AVX512_CORE_AMX",
                   "AVX10_1_512_AMX_FP16": "AVX512_CORE_AMX_FP16"}
_ONEDNN_NEEDS = {"AVX2": "AVX2", "AVX-512": "AVX512_CORE", "AVX512_BF16": "AVX512_CORE_BF16", "AMX": "AVX512_CORE_AMX"}
#: ``torch.backends.cpu.get_cpu_capability()`` values and the vector features PyTorch's kernels use at each
_ATEN_ALLOWS = {"DEFAULT": set(), "AVX2": {"AVX2"}}


@dataclass(frozen=True)
class CPUInfo:
    """The CPU's model name, its logical core count and the vector features genlab's speed depends on."""

    name: str
    cores: int
    features: tuple[str, ...]  # subset of AVX2, AVX-512, AVX512_BF16, AMX, in that order; usable by this process
    capped: tuple[str, ...] = ()  # hardware features the environment's caps (ONEDNN_MAX_CPU_ISA, ...) take away
    caps: tuple[str, ...] = ()  # those caps as NAME=value

    @property
    def native_bf16(self) -> bool:
        """True if bf16 matrix products run natively (AVX512_BF16 or AMX), so bf16 autocast pays."""
        return "AVX512_BF16" in self.features or "AMX" in self.features

    def describe(self) -> str:
        """One line, e.g. ``Intel(R) Xeon(R) Processor, 2 cores, AVX2 AVX-512 AVX512_BF16 AMX``, naming the
        caps and the features they take away when the environment sets any."""
        line = f"{self.name}, {self.cores} cores, {' '.join(self.features) or 'no AVX2'}"
        if self.caps:
            line += f" (capped by {' '.join(self.caps)}: the hardware's {' '.join(self.capped) or 'nothing'} unused)"
        return line


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
    hardware = []
    for feature, probe in _FEATURES.items():
        check = getattr(torch.cpu, probe, None)
        present = bool(check()) if check is not None else _FLAGS[feature] in flags
        if present:
            hardware.append(feature)
    allowed, caps = _allowed_by_caps()
    return CPUInfo(name or platform.processor() or platform.machine(), _cores(),
                   tuple(f for f in hardware if f in allowed), tuple(f for f in hardware if f not in allowed), caps)


def _allowed_by_caps() -> tuple[set[str], tuple[str, ...]]:
    """The features the environment lets this process use, and the caps in force as ``NAME=value``.

    ``ONEDNN_MAX_CPU_ISA`` limits every feature; PyTorch's ``ATEN_CPU_CAPABILITY`` (read back from
    torch, so a bad value torch ignores counts as no cap) limits AVX2 and AVX-512 but not the bf16
    units, which only oneDNN drives.
    """
    allowed, caps = set(_ONEDNN_NEEDS), []
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    onednn = _ONEDNN_ALIASES.get(onednn, onednn)
    if onednn in _ONEDNN_ISAS and onednn != "ALL":
        level = _ONEDNN_ISAS.index(onednn)
        allowed = {f for f, needs in _ONEDNN_NEEDS.items() if _ONEDNN_ISAS.index(needs) <= level}
        caps.append(f"ONEDNN_MAX_CPU_ISA={onednn}")
    aten = torch.backends.cpu.get_cpu_capability().upper() if os.environ.get("ATEN_CPU_CAPABILITY") else ""
    if aten in _ATEN_ALLOWS:
        allowed -= {"AVX2", "AVX-512"} - _ATEN_ALLOWS[aten]
        caps.append(f"ATEN_CPU_CAPABILITY={aten.lower()}")
    return allowed, tuple(caps)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision to train in for ``train.precision=requested`` on ``device``, and why.

    ``fp32`` and ``bf16`` are kept as asked (the reason says so, and for ``bf16`` on a CPU without
    native bf16 that it runs emulated there, slower than fp32); ``auto`` is ``bf16`` on a CUDA device
    that supports it and on a CPU with native bf16 (AVX512_BF16 or AMX), ``fp32`` otherwise.
    """
    if requested != "auto":
        why = f"train.precision={requested}"
        if requested == "bf16" and device.type == "cpu" and not cpu_info().native_bf16:
            why += (" on a CPU without native bf16 (AVX512_BF16 or AMX): emulated, slower than fp32 here; "
                    "train.precision=auto picks fp32")
        return requested, why
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", f"{torch.cuda.get_device_name(device)} supports bf16"
        return "fp32", f"{torch.cuda.get_device_name(device)} has no bf16"
    info = cpu_info()
    if info.native_bf16:
        native = " and ".join(f for f in ("AVX512_BF16", "AMX") if f in info.features)
        return "bf16", f"the CPU runs bf16 natively ({native})"
    if {"AVX512_BF16", "AMX"} & set(info.capped):
        return "fp32", f"{' '.join(info.caps)} leaves no native bf16 (AVX512_BF16 or AMX), where bf16 runs slower than fp32"
    return "fp32", "the CPU has no native bf16 (no AVX512_BF16 or AMX), where bf16 runs slower than fp32"


def check_compile_toolchain(device: torch.device, option: str = "train.compile=true") -> None:
    """Raise :class:`~genlab.errors.GenlabError` naming ``option`` unless ``torch.compile`` can build
    kernels for ``device``: on a CPU, inductor compiles C++ and needs a working C++ compiler (it looks
    for ``$CXX``, else g++; clang++ on macOS). Without this check the first train step would fail deep
    inside inductor with ``InvalidCxxCompiler``, after the run directory was written."""
    if device.type != "cpu":
        return
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except (exc.InvalidCxxCompiler, OSError, RuntimeError) as error:
        from genlab.errors import GenlabError

        raise GenlabError(f"{option}: torch.compile on the CPU needs a working C++ compiler, and none was "
                          f"found ({type(error).__name__}; it tries $CXX, else g++, clang++ on macOS). Install one "
                          f"(Debian/Ubuntu: apt-get install g++) and/or set CXX to it, or run without "
                          f"{option.split('=')[0]} (eager steps).") from None
