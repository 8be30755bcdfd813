"""decode_image against the hostile files real image folders hold, and resize_square."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from genlab.data import images as images_module
from genlab.data.images import IMAGE_SUFFIXES, decode_image, resize_square
from genlab.errors import DataError, GenlabError, ImageDecodeError


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def noise_rgb(h: int = 32, w: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_png_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its IHDR claiming ``width x height`` (CRC fixed), the pixel data unchanged."""
    assert png[12:16] == b"IHDR"
    ihdr = bytearray(png[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return png[:8] + png_chunk(b"IHDR", bytes(ihdr)) + png[33:]


def assert_refused(path_or_bytes, fragment: str, label: str, **kwargs) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path_or_bytes, **kwargs)
    message = str(info.value)
    assert label in message, message
    assert fragment in message, message
    return info.value


# --- refused files ------------------------------------------------------------------------


def test_error_is_a_user_facing_data_error():
    assert issubclass(ImageDecodeError, DataError) and issubclass(ImageDecodeError, GenlabError)


def test_zero_byte_file(tmp_path):
    path = write(tmp_path, "empty.png", b"")
    err = assert_refused(path, "empty file", "empty.png")
    assert err.path == str(path)


def test_zero_bytes_named():
    assert_refused(b"", "empty file", "upload.png", name="upload.png")


def test_random_bytes_not_an_image(tmp_path):
    path = write(tmp_path, "noise.jpg", np.random.default_rng(1).bytes(4096))
    assert_refused(path, "not a recognised image format", "noise.jpg")


def test_text_file_with_image_suffix(tmp_path):
    path = write(tmp_path, "notes.png", b"these are my holiday notes, not a picture\n" * 10)
    assert_refused(path, "not a recognised image format", "notes.png")


def test_eps_is_not_opened(tmp_path):
    # EPS would make Pillow run Ghostscript on untrusted input: not an accepted format.
    path = write(tmp_path, "evil.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    assert_refused(path, "not a recognised image format", "evil.png")


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated(tmp_path, fmt, suffix):
    data = encode(noise_rgb(64, 64), fmt)
    path = write(tmp_path, f"cut.{suffix}", data[: len(data) // 2])
    assert_refused(path, "truncated or corrupt", f"cut.{suffix}")


def test_truncated_is_not_accepted_globally(tmp_path):
    data = encode(noise_rgb(64, 64), "PNG")
    path = write(tmp_path, "cut.png", data[: len(data) // 2])
    with pytest.raises(ImageDecodeError):
        decode_image(path)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def test_corrupt_png_data(tmp_path):
    data = bytearray(encode(noise_rgb(64, 64), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 200] = bytes(190)  # zeroed deflate stream, CRC now wrong too
    path = write(tmp_path, "bad.png", bytes(data))
    assert_refused(path, "corrupt", "bad.png")


def test_bomb_header_beyond_pillow_limit(tmp_path):
    png = with_png_size(encode(noise_rgb(16, 16), "PNG"), 100_000, 100_000)
    path = write(tmp_path, "bomb.png", png)
    err = assert_refused(path, "decompression bomb", "bomb.png")
    assert "10000000000" in str(err)  # the claimed size
    assert "50,000,000" in str(err)  # genlab's limit


def test_bomb_header_within_pillow_limit_checked_before_decoding(tmp_path):
    # 8000 x 8000 = 64 M pixels: below Pillow's warning limit (89 M), above ours (50 M). The
    # pixel data is that of a 16x16 image, so only a check before decoding can give this message.
    png = with_png_size(encode(noise_rgb(16, 16), "PNG"), 8000, 8000)
    path = write(tmp_path, "big.png", png)
    err = assert_refused(path, "8000x8000", "big.png")
    assert "64,000,000" in str(err) and "50,000,000" in str(err)


def test_max_pixels_limit(tmp_path):
    path = write(tmp_path, "photo.png", encode(noise_rgb(40, 30), "PNG"))
    assert_refused(path, "1,200 pixels, more than the limit of 1,000", "photo.png", max_pixels=1000)
    assert decode_image(path, max_pixels=1200).shape == (40, 30, 3)


def test_pillow_bomb_warning_is_refused(tmp_path):
    # Between Pillow's MAX_IMAGE_PIXELS and twice it Pillow only warns: still refused.
    png = with_png_size(encode(noise_rgb(16, 16), "PNG"), 10_000, 10_000)
    path = write(tmp_path, "warn.png", png)
    err = assert_refused(path, "decompression bomb", "warn.png", max_pixels=10**12)
    assert "100000000" in str(err)


def test_tiny_image(tmp_path):
    path = write(tmp_path, "tiny.png", encode(noise_rgb(2, 2), "PNG"))
    err = assert_refused(path, "2x2", "tiny.png")
    assert "minimum of 8x8" in str(err)
    assert decode_image(path, min_size=2).shape == (2, 2, 3)


def test_thin_image(tmp_path):
    path = write(tmp_path, "strip.png", encode(noise_rgb(4, 400), "PNG"))
    assert_refused(path, "400x4", "strip.png")


def test_directory(tmp_path):
    folder = tmp_path / "photos.png"
    folder.mkdir()
    assert_refused(folder, "directory", "photos.png")


def test_nonexistent(tmp_path):
    assert_refused(tmp_path / "missing.png", "no such file", "missing.png")


def test_not_a_regular_file(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert_refused(fifo, "not a regular file", "pipe.png")  # and does not block reading it


def test_permission_denied(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.png", encode(noise_rgb(), "PNG"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Root reads any file whatever its mode, so make open() refuse as it would for a user.
    monkeypatch.setattr(images_module, "open", refuse, raising=False)
    assert_refused(path, "permission denied", "locked.png")


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="mode"):
        decode_image(b"x", mode="CMYK")


# --- converted files ----------------------------------------------------------------------


def test_rgb_png_round_trip(tmp_path):
    img = noise_rgb(20, 30)
    path = write(tmp_path, "ok.png", encode(img, "PNG"))
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, np.asarray(img))


def test_rgb_to_l_uses_luma(tmp_path):
    img = noise_rgb(16, 16)
    path = write(tmp_path, "ok.png", encode(img, "PNG"))
    out = decode_image(path, mode="L")
    assert out.shape == (16, 16, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], np.asarray(img.convert("L")))


def test_str_path_and_bytes_agree(tmp_path):
    data = encode(noise_rgb(), "PNG")
    path = write(tmp_path, "ok.png", data)
    np.testing.assert_array_equal(decode_image(str(path)), decode_image(data))


def test_cmyk_jpeg(tmp_path):
    # Pure cyan ink: no red, full green and blue.
    data = encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=100)
    path = write(tmp_path, "cmyk.jpg", data)
    assert Image.open(path).mode == "CMYK"
    out = decode_image(path)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[..., 0].max() <= 3 and out[..., 1:].min() >= 252


def test_16bit_png(tmp_path):
    values = np.array([[0, 255, 256, 40000, 65535] * 2] * 10, dtype=np.uint16)
    path = write(tmp_path, "deep.png", encode(Image.fromarray(values), "PNG"))
    assert Image.open(path).mode.startswith("I;16")
    out = decode_image(path, mode="L")
    assert out.shape == (10, 10, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :5, 0], [0, 0, 1, 156, 255])
    rgb = decode_image(path)
    assert rgb.shape == (10, 10, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_32bit_int_tiff_wide_range_is_stretched(tmp_path):
    values = np.linspace(-1000, 100_000, 100).astype(np.int32).reshape(10, 10)
    path = write(tmp_path, "wide.tif", encode(Image.fromarray(values), "TIFF"))
    assert Image.open(path).mode == "I"
    out = decode_image(path, mode="L")[:, :, 0]
    assert out[0, 0] == 0 and out[-1, -1] == 255
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)


def test_float_tiff_unit_range(tmp_path):
    values = np.tile(np.linspace(0.0, 1.0, 11, dtype=np.float32), (11, 1))
    path = write(tmp_path, "float.tif", encode(Image.fromarray(values), "TIFF"))
    assert Image.open(path).mode == "F"
    out = decode_image(path, mode="L")
    assert out.shape == (11, 11, 1) and out.dtype == np.uint8
    expected = np.linspace(0, 255, 11)  # float32 inputs: allow one grey level of rounding
    np.testing.assert_allclose(out[0, :, 0].astype(float), expected, atol=1)


def test_float_tiff_other_range_and_nan(tmp_path):
    values = np.tile(np.linspace(-3.0, 7.0, 11, dtype=np.float32), (11, 1))
    values[5, 5] = np.nan
    values[6, 6] = np.inf
    path = write(tmp_path, "hdr.tif", encode(Image.fromarray(values), "TIFF"))
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == (11, 11, 3)
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert out[6, 6, 0] == 255


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    for x in range(8):
        for y in range(16):
            img.putpixel((x, y), 1)  # left half blue, right half index 0 = transparent
    path = write(tmp_path, "pal.png", encode(img, "PNG", transparency=0))
    out = decode_image(path)
    assert out.shape == (16, 16, 3)
    assert (out[:, :8] == [0, 0, 255]).all()
    assert (out[:, 8:] == 255).all()


def test_palette_without_transparency(tmp_path):
    img = Image.new("RGB", (16, 16), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    path = write(tmp_path, "pal.gif", encode(img, "GIF"))
    out = decode_image(path)
    assert (out == [10, 200, 30]).all()


def test_rgba_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., :3] = (0, 0, 0)
    rgba[:8, :, 3] = 0  # top half fully transparent black
    rgba[8:, :, 3] = 255  # bottom half opaque black
    rgba[8, 0] = (0, 0, 0, 128)  # one half-transparent black pixel
    path = write(tmp_path, "alpha.png", encode(Image.fromarray(rgba), "PNG"))
    out = decode_image(path)
    assert (out[:8] == 255).all()
    assert (out[9:] == 0).all()
    assert (out[8, 0] == 127).all()
    grey = decode_image(path, mode="L")
    assert grey.shape == (16, 16, 1) and (grey[:8] == 255).all() and (grey[9:] == 0).all()


def test_la_image(tmp_path):
    path = write(tmp_path, "la.png", encode(Image.new("LA", (16, 16), (0, 0)), "PNG"))
    assert (decode_image(path, mode="L") == 255).all()


@pytest.mark.parametrize(
    "fmt,suffix,extra",
    [("GIF", "gif", {}), ("PNG", "png", {}), ("WEBP", "webp", {"lossless": True})],
)
def test_animated_first_frame(tmp_path, fmt, suffix, extra):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (16, 16), c) for c in colours]
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra
    )
    path = write(tmp_path, f"anim.{suffix}", data)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    out = decode_image(path)
    assert out.shape == (16, 16, 3)
    assert (out == [255, 0, 0]).all()


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 128, 0))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = write(tmp_path, "phone.jpg", encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert Image.open(path).size == (40, 20)
    out = decode_image(path)
    assert out.shape == (40, 20, 3)  # (H, W): the stored 40-wide image displayed upright
    top, bottom = out[:15].reshape(-1, 3).mean(0), out[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and bottom[1] > 100  # the left (red) half is now on top


def test_broken_exif_does_not_refuse(tmp_path):
    img = noise_rgb(16, 16)
    path = write(tmp_path, "exif.jpg", encode(img, "JPEG", exif=b"Exif\x00\x00garbage-garbage"))
    assert decode_image(path).shape == (16, 16, 3)


def test_one_bit(tmp_path):
    img = Image.new("1", (16, 16), 0)
    img.paste(1, (0, 0, 8, 16))
    path = write(tmp_path, "mono.png", encode(img, "PNG"))
    out = decode_image(path, mode="L")
    assert out.shape == (16, 16, 1)
    assert (out[:, :8] == 255).all() and (out[:, 8:] == 0).all()


@pytest.mark.parametrize("fmt,suffix", [("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp")])
def test_other_formats(tmp_path, fmt, suffix):
    img = Image.new("RGB", (12, 10), (200, 100, 50))
    extra = {"lossless": True} if fmt == "WEBP" else {}
    path = write(tmp_path, f"x.{suffix}", encode(img, fmt, **extra))
    out = decode_image(path)
    assert out.shape == (10, 12, 3)
    assert (out == [200, 100, 50]).all()


def test_suffixes():
    assert IMAGE_SUFFIXES == (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


# --- resize_square ------------------------------------------------------------------------


def test_resize_square_center_crop_and_size():
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    image[:, :10] = 255  # a white band outside the central 30x30 square
    image[:, 40:] = 255
    out = resize_square(image, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out == 0).all()


def test_resize_square_tall_and_grey():
    image = np.full((50, 30, 1), 77, dtype=np.uint8)
    out = resize_square(image, 64)
    assert out.shape == (64, 64, 1) and out.dtype == np.uint8
    assert (out == 77).all()


def test_resize_square_same_size_is_a_copy():
    image = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    out = resize_square(image, 16)
    np.testing.assert_array_equal(out, image)
    out[0, 0, 0] = 1
    assert image[0, 0, 0] == 0


def test_resize_square_rejects_bad_input():
    with pytest.raises(ValueError):
        resize_square(np.zeros((8, 8), dtype=np.uint8), 4)
    with pytest.raises(ValueError):
        resize_square(np.zeros((8, 8, 3), dtype=np.float32), 4)


# --- properties ---------------------------------------------------------------------------

_PNG = encode(noise_rgb(16, 16), "PNG")
_JPEG = encode(noise_rgb(16, 16), "JPEG")
_GIF = encode(noise_rgb(16, 16).convert("P"), "GIF")


@st.composite
def hostile_bytes(draw):
    """Arbitrary bytes, and valid files with bytes flipped, cut or appended."""
    kind = draw(st.sampled_from(["raw", "mutated"]))
    if kind == "raw":
        prefix = draw(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"]))
        return prefix + draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from([_PNG, _JPEG, _GIF])))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=16))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile_bytes(), mode=st.sampled_from(["L", "RGB"]))
def test_any_bytes_decode_or_raise_image_decode_error(data, mode):
    try:
        out = decode_image(data, name="x", mode=mode, min_size=1)
    except ImageDecodeError as exc:
        assert str(exc).startswith("x: ")
        assert exc.reason
        return
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.ndim == 3 and out.shape[2] == (1 if mode == "L" else 3)
    assert out.shape[0] >= 1 and out.shape[1] >= 1


_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
_FORMATS = {
    "1": ["PNG", "BMP", "TIFF"],
    "L": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}


def _random_image(rng: np.random.Generator, pil_mode: str, width: int, height: int) -> Image.Image:
    if pil_mode in ("I;16", "I", "F"):
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[pil_mode]
        values = rng.integers(0, 60000, (height, width)).astype(dtype)
        return Image.fromarray(values)
    if pil_mode == "P":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(
            "P"
        )
    if pil_mode == "1":
        return Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).convert("1")
    bands = len(Image.new(pil_mode, (1, 1)).getbands())
    raw = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    return Image.frombytes(pil_mode, (width, height), raw.tobytes())


@settings(max_examples=60, deadline=None)
@given(
    pil_mode=st.sampled_from(_MODES),
    width=st.integers(8, 48),
    height=st.integers(8, 48),
    out_mode=st.sampled_from(["L", "RGB"]),
    choice=st.integers(0, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_images_round_trip_to_right_shape(pil_mode, width, height, out_mode, choice, seed):
    formats = _FORMATS[pil_mode]
    fmt = formats[choice % len(formats)]
    img = _random_image(np.random.default_rng(seed), pil_mode, width, height)
    data = encode(img, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = decode_image(data, name=f"{pil_mode}.{fmt}", mode=out_mode)
    assert out.dtype == np.uint8
    assert out.shape == (height, width, 1 if out_mode == "L" else 3)
    if pil_mode == "RGB" and fmt in ("PNG", "BMP", "TIFF") and out_mode == "RGB":
        np.testing.assert_array_equal(out, np.asarray(img))
