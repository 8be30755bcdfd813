"""Keep freed memory for reuse instead of handing it back to the OS after every train step.

glibc's ``malloc`` serves each request above its mmap threshold (at most 32 MB) with a fresh
``mmap`` and returns it with ``munmap`` on free. A train step's large activations — at batch 128 the
seed DCGAN's 64×48×48 fp32 maps (96 px) are 75 MB each — are freed at the end of every step, so the next step
gets new pages and the kernel zero-fills each 4 KB page on first touch. On this project's EPYC VMs
that costs ~2 µs per page: ``torch.relu`` of a (128, 32, 96, 96) map took 81 ms, of which 68 ms
were page faults (13 ms with freed memory reused; one thread, fp32).

:func:`reuse_freed_memory` turns that off for the process with ``mallopt``: no ``mmap`` for
allocations (``M_MMAP_MAX = 0``; they come from the heap) and no trimming of the heap's free top
below 1 GiB (``M_TRIM_THRESHOLD``), so freed activations are reused by the next step. The cost:
the process keeps its peak heap after a step instead of returning it, which a training process
reaches again at its next step anyway, and the heap settles above that peak over the
first steps (PyTorch's 64-byte-aligned requests do not fit a chunk of their own size just freed
until neighbouring free chunks have merged; FCGAN at batch 256: 855-1,019 against 844-867 MiB,
RELIABILITY.md). ``genlab bench``'s peak resident memory (both loops in
one process, batch 128, compiled, capped to AVX2) after and before this change: 1,648 against
1,804 MiB for the DCGAN at 64 px, 3,064 against 2,948 MiB for the seed DCGAN at 96 px.

Not glibc (musl, macOS, Windows): nothing happens and it says so. ``train.reuse_freed_memory`` (on
by default) applies it when a run starts, and ``genlab eval`` when it evaluates one, both through
:func:`keep_freed_memory_if`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: glibc ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
#: the heap's free top that is kept, not trimmed (bytes)
KEEP_FREE_BYTES = 1 << 30
#: glibc's steady state in a process that has freed a chunk above the mmap threshold's cap: the
#: dynamic threshold has risen to its 32 MB maximum (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit),
#: trimming to twice that, at most 65,536 mmaps (``DEFAULT_MMAP_MAX``)
GLIBC_STEADY_STATE = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20, M_MMAP_MAX: 65536}


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else ``None``."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError outside glibc
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory(enabled: bool = True) -> bool:
    """Keep freed memory in the heap for reuse (``enabled``), or go back to glibc's steady-state
    behaviour after trimming what was kept (``enabled=False``; ``genlab bench`` runs its plain
    baseline so). Returns whether the C library is glibc and took the settings."""
    libc = _glibc()
    if libc is None:
        return False
    if enabled:
        settings = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: KEEP_FREE_BYTES}
    else:
        settings = GLIBC_STEADY_STATE
        libc.malloc_trim(0)
    return all(libc.mallopt(param, value) == 1 for param, value in settings.items())


def keep_freed_memory_if(enabled: bool) -> bool:
    """What training, ``genlab eval`` and the profiling tools do with ``train.reuse_freed_memory``:
    keep freed memory if ``enabled``; if not, leave the C library as it is (unlike
    ``reuse_freed_memory(False)``, which trims and resets it, as ``genlab bench`` does before its plain
    loop). Returns whether freed memory is now kept."""
    return enabled and reuse_freed_memory()
