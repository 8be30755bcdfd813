"""genlab.core.allocator: freed activations are reused, not page-faulted in again."""

import resource

import torch

from conftest import tiny_config
from genlab.core import allocator
from genlab.train import loop


def _page_faults_of_a_fresh_tensor(nbytes: int) -> int:
    """Minor page faults while a freshly allocated ``nbytes`` tensor is filled, after eight of the same
    size were filled and freed (the heap reaches its steady state: PyTorch's 64-byte-aligned requests
    do not fit the chunk just freed until a few freed chunks have merged)."""
    for _ in range(8):
        torch.ones(nbytes // 4)  # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(nbytes // 4)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_reused_memory_is_not_page_faulted_again():
    pages = (64 << 20) // resource.getpagesize()
    try:
        assert allocator.reuse_freed_memory(False)  # glibc's own behaviour: 64 MB comes from a fresh mmap
        assert _page_faults_of_a_fresh_tensor(64 << 20) > pages // 2
        assert allocator.reuse_freed_memory(True)
        assert _page_faults_of_a_fresh_tensor(64 << 20) < pages // 10
    finally:
        allocator.reuse_freed_memory(True)  # as training leaves the process


def test_without_glibc_it_does_nothing_and_says_so(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.reuse_freed_memory(True) is False
    assert allocator.reuse_freed_memory(False) is False


def test_training_applies_it_unless_switched_off_and_logs_a_c_library_without_it(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "reuse_freed_memory", lambda enabled=True: calls.append(enabled) or False)
    run = loop.train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "on")
    assert calls == [True]
    assert "train.reuse_freed_memory: this C library is not glibc" in (run / "train.log").read_text()
    run = loop.train(tiny_config("vae-mnist", "train.epochs=1", "train.reuse_freed_memory=false"), tmp_path / "off")
    assert calls == [True] and "reuse_freed_memory" not in (run / "train.log").read_text()
