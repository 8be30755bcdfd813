"""CUB for StackGAN: the restricted unpickler, the layout, the bounding-box crop and the errors, on a tiny fake tree."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.data.cub import CubSplit, RestrictedUnpickler, crop_box, load_bounding_boxes, load_cub, restricted_load
from genlab.errors import ConfigError, DataError, ImageDecodeError

GREEN, RED, BLUE = (0, 160, 0), (220, 0, 0), (0, 0, 200)

# name -> (width, height, background, coloured box (x, y, w, h) drawn in RED, class id)
IMAGES = {
    "001.Albatross/Albatross_0001": (200, 100, GREEN, (120, 40, 40, 30), 1),  # box well inside
    "001.Albatross/Albatross_0002": (100, 100, GREEN, (0, 0, 40, 40), 1),  # box in a corner: crop clipped
    "002.Grebe/Grebe_0001": (64, 48, BLUE, (10, 10, 30, 20), 2),
    "002.Grebe/Grebe_0002": (80, 80, BLUE, (20, 20, 40, 40), 2),
}
TRAIN = ["001.Albatross/Albatross_0001", "001.Albatross/Albatross_0002", "002.Grebe/Grebe_0001"]
TEST = ["002.Grebe/Grebe_0002"]
DIM = 16


def _embeddings(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 10, DIM)).astype(np.float32)


def _dump(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cub(root: Path, *, nested: bool = False) -> Path:
    """A fake StackGAN CUB tree: ``root/birds/{train,test}`` and ``CUB_200_2011`` beside (or, ``nested``, inside) ``birds``."""
    birds = root / "birds"
    cub = (birds if nested else root) / "CUB_200_2011"
    for split, names, seed in (("train", TRAIN, 0), ("test", TEST, 1)):
        (birds / split).mkdir(parents=True)
        _dump(birds / split / "filenames.pickle", list(names))
        _dump(birds / split / "char-CNN-RNN-embeddings.pickle", _embeddings(len(names), seed))
        _dump(birds / split / "class_info.pickle", [IMAGES[n][4] for n in names])
    id_lines, box_lines = [], []
    for image_id, (name, (w, h, bg, (bx, by, bw, bh), _)) in enumerate(IMAGES.items(), start=1):
        pixels = np.zeros((h, w, 3), np.uint8)
        pixels[:] = bg
        pixels[by : by + bh, bx : bx + bw] = RED
        (cub / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(cub / "images" / f"{name}.jpg", quality=95)
        id_lines.append(f"{image_id} {name}.jpg")
        box_lines.append(f"{image_id} {float(bx)} {float(by)} {float(bw)} {float(bh)}")  # CUB writes floats
    (cub / "images.txt").write_text("\n".join(id_lines) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(box_lines) + "\n")
    return root


@pytest.fixture
def cub_root(tmp_path) -> Path:
    return make_cub(tmp_path / "data")


# ---------------------------------------------------------------- restricted unpickler


class _CreatesFile:
    """Unpickling this would call open(marker, 'w'), creating the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_CreatesFile, _RunsShell])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = tmp_path / "filenames.pickle"
    evil.write_bytes(pickle.dumps(["ok", payload(marker)], protocol=2))
    func = open if payload is _CreatesFile else os.system
    refused = f"{func.__module__}.{func.__name__}"  # io.open / posix.system
    with pytest.raises(DataError) as info:
        restricted_load(evil)
    assert not marker.exists()
    assert str(evil) in str(info.value)
    assert refused in str(info.value)


def test_malicious_pickle_inside_a_cub_tree_is_refused(cub_root, tmp_path):
    marker = tmp_path / "pwned"
    target = cub_root / "birds" / "train" / "char-CNN-RNN-embeddings.pickle"
    target.write_bytes(pickle.dumps(_CreatesFile(marker), protocol=2))
    with pytest.raises(DataError, match=r"refusing to unpickle the global io\.open") as info:
        load_cub(cub_root, "train", 16)
    assert str(target) in str(info.value)
    assert not marker.exists()


def test_other_classes_and_builtins_are_refused(tmp_path):
    for obj, name in (({1, 2}, "builtins.set"), (Path("x"), "pathlib."), (eval, "builtins.eval")):
        path = tmp_path / "x.pickle"
        path.write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            restricted_load(path)


def test_restricted_load_round_trips_plain_data_and_arrays(tmp_path):
    obj = {
        "names": ["a/b", "ü/ñ"],
        "tuple": (1, 2.5, None, True),
        "bytes": b"\x00\xff",
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "scalar": np.int64(7),
        "big": 2**70,
    }
    path = tmp_path / "ok.pickle"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        out = restricted_load(path)
        assert out.keys() == obj.keys()
        np.testing.assert_array_equal(out["array"], obj["array"])
        assert out["array"].dtype == np.float32
        assert out["names"] == obj["names"] and out["bytes"] == obj["bytes"] and out["tuple"] == obj["tuple"]
        assert out["scalar"] == 7 and out["big"] == 2**70


def _py2_array_pickle(array: np.ndarray) -> bytes:
    """The bytes Python 2 + numpy 1 write for ``pickle.dump(array, f, 2)`` of a little-endian float32 array."""
    assert array.dtype == np.float32 and all(d < 256 for d in array.shape)
    raw = array.tobytes()
    shape = b"(" + b"".join(b"K" + bytes([d]) for d in array.shape) + b"t"
    dtype = b"cnumpy\ndtype\nU\x02f4K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01" + shape + dtype + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb."
    )


def _py2_str_list_pickle(names: list[str]) -> bytes:
    """Python 2's protocol-2 pickle of a list of byte strings (``str`` in Python 2)."""
    items = b"".join(b"U" + bytes([len(n)]) + n.encode("latin1") for n in names)
    return b"\x80\x02](" + items + b"e."


def test_python2_pickles_as_the_authors_wrote_them(tmp_path):
    array = np.arange(3 * 10 * 4, dtype=np.float32).reshape(3, 10, 4)
    (tmp_path / "emb.pickle").write_bytes(_py2_array_pickle(array))
    (tmp_path / "names.pickle").write_bytes(_py2_str_list_pickle(["001.A/a_1", "caf\xe9/b"]))
    out = restricted_load(tmp_path / "emb.pickle")
    np.testing.assert_array_equal(out, array)
    assert restricted_load(tmp_path / "names.pickle") == ["001.A/a_1", "caf\xe9/b"]


def test_corrupt_and_missing_pickles(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        restricted_load(tmp_path / "missing.pickle")
    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2)[:-4])
    with pytest.raises(DataError, match=r"bad\.pickle: not a valid pickle"):
        restricted_load(bad)


def test_unpickler_class_can_be_used_directly(tmp_path):
    import io

    with pytest.raises(DataError, match=r"my-label: refusing to unpickle the global __builtin__\.eval \(builtins\.eval in Python 3\)"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(eval, protocol=2)), label="my-label").load()


# ---------------------------------------------------------------- load_cub


def test_load_cub_shapes_and_values(cub_root):
    train = load_cub(cub_root, "train", 32)
    assert isinstance(train, CubSplit) and len(train) == 3
    assert train.images.dtype == torch.uint8 and train.images.shape == (3, 3, 32, 32)
    assert train.embeddings.dtype == torch.float32 and train.embeddings.shape == (3, 10, DIM)
    assert train.class_ids.dtype == torch.int64 and train.class_ids.tolist() == [1, 1, 2]
    assert train.filenames == TRAIN
    np.testing.assert_array_equal(train.embeddings.numpy(), _embeddings(3, 0))

    test = load_cub(cub_root, "test", 16)
    assert test.images.shape == (1, 3, 16, 16) and test.filenames == TEST and test.class_ids.tolist() == [2]
    assert len(load_cub(cub_root, "train", 8, limit=2)) == 2


def test_authors_layout_with_cub_inside_birds(tmp_path):
    root = make_cub(tmp_path / "data", nested=True)
    a = load_cub(root / "birds", "train", 16)  # DATA_DIR = data/birds, as in the authors' configs
    b = load_cub(root, "train", 16)
    assert torch.equal(a.images, b.images) and a.filenames == TRAIN


def test_crop_box_follows_stackgan():
    # box (120, 40, 40, 30): r = int(0.75 * 40) = 30, centre (140, 55) -> [110, 170) x [25, 85)
    assert crop_box((120, 40, 40, 30), 200, 100) == (110, 25, 170, 85)
    # corner box (0, 0, 40, 40): r = 30, centre (20, 20) -> clipped to [0, 50) x [0, 50)
    assert crop_box((0, 0, 40, 40), 100, 100) == (0, 0, 50, 50)
    # odd sizes: centre int((2 * 3 + 5) / 2) = 5, r = int(0.75 * 5) = 3
    assert crop_box((3, 3, 5, 5), 100, 100) == (2, 2, 8, 8)


def _red_mask(image: torch.Tensor) -> np.ndarray:
    r, g, b = image.numpy().astype(int)
    return (r > 150) & (g < 80) & (b < 80)


def test_crop_is_centred_on_the_box(cub_root):
    s = 60  # the crop of image 0 is exactly 60 x 60: no resampling
    data = load_cub(cub_root, "train", s)
    red = _red_mask(data.images[0])
    ys, xs = np.nonzero(red)
    # the 40 x 30 red box sits at [10, 50) x [15, 45) of the crop: centred at (29.5, 29.5)
    assert abs(xs.mean() - 29.5) < 1 and abs(ys.mean() - 29.5) < 1
    assert 38 <= xs.max() - xs.min() + 1 <= 42 and 28 <= ys.max() - ys.min() + 1 <= 32
    assert not red[:, :8].any() and not red[:8, :].any()  # green margins all round
    # exactly the crop [110, 170) x [25, 85) of the decoded JPEG
    path = cub_root / "CUB_200_2011" / "images" / f"{TRAIN[0]}.jpg"
    whole = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(data.images[0].numpy().transpose(1, 2, 0), whole[25:85, 110:170])


def test_crop_is_clipped_at_the_image_border(cub_root):
    data = load_cub(cub_root, "train", 50)  # image 1's crop is [0, 50) x [0, 50): no resampling
    red = _red_mask(data.images[1])
    ys, xs = np.nonzero(red)
    assert xs.min() == 0 and ys.min() == 0 and 38 <= xs.max() <= 41 and 38 <= ys.max() <= 41


def test_no_crop_resizes_the_whole_image(cub_root):
    (cub_root / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    data = load_cub(cub_root, "train", 20, crop=False)
    assert data.images.shape == (3, 3, 20, 20)
    with pytest.raises(DataError, match=r"bounding_boxes\.txt not found; expected layout"):
        load_cub(cub_root, "train", 20)


def test_bounding_boxes_join_on_image_id(cub_root):
    boxes = load_bounding_boxes(cub_root / "CUB_200_2011")
    assert boxes["001.Albatross/Albatross_0001"] == (120, 40, 40, 30)
    assert len(boxes) == len(IMAGES)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "relative",
    [
        "birds/train/filenames.pickle",
        "birds/train/char-CNN-RNN-embeddings.pickle",
        "birds/train/class_info.pickle",
        "CUB_200_2011/images.txt",
    ],
)
def test_missing_file_is_named_with_the_layout(cub_root, relative):
    (cub_root / relative).unlink()
    with pytest.raises(DataError) as info:
        load_cub(cub_root, "train", 16)
    message = str(info.value)
    assert str(cub_root / relative) in message and "expected layout" in message


def test_missing_folders(tmp_path, cub_root):
    with pytest.raises(DataError, match="does not exist"):
        load_cub(tmp_path / "nowhere", "train", 16)
    import shutil

    shutil.rmtree(cub_root / "CUB_200_2011")
    with pytest.raises(DataError, match="no CUB_200_2011 folder"):
        load_cub(cub_root, "train", 16)


def test_missing_image_is_named(cub_root):
    path = cub_root / "CUB_200_2011" / "images" / f"{TRAIN[2]}.jpg"
    path.unlink()
    with pytest.raises(DataError, match="entry 2 of") as info:
        load_cub(cub_root, "train", 16)
    assert str(path) in str(info.value)


def test_embedding_count_mismatch(cub_root):
    _dump(cub_root / "birds" / "train" / "char-CNN-RNN-embeddings.pickle", _embeddings(5, 0))
    with pytest.raises(DataError, match="holds 5 embeddings but .*filenames.pickle lists 3 images"):
        load_cub(cub_root, "train", 16)


def test_class_info_count_mismatch(cub_root):
    _dump(cub_root / "birds" / "train" / "class_info.pickle", [1, 2])
    with pytest.raises(DataError, match=r"class_info\.pickle holds class ids of shape \(2,\)"):
        load_cub(cub_root, "train", 16)


def test_corrupt_image_is_named(cub_root):
    path = cub_root / "CUB_200_2011" / "images" / f"{TRAIN[1]}.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(ImageDecodeError) as info:
        load_cub(cub_root, "train", 16)
    assert isinstance(info.value, DataError) and str(path) in str(info.value)


def test_image_without_a_bounding_box(cub_root):
    lines = (cub_root / "CUB_200_2011" / "bounding_boxes.txt").read_text().splitlines()
    (cub_root / "CUB_200_2011" / "bounding_boxes.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match="has no box for 1 image.*Albatross_0001"):
        load_cub(cub_root, "train", 16)


def test_malformed_bounding_box_line(cub_root):
    path = cub_root / "CUB_200_2011" / "bounding_boxes.txt"
    path.write_text(path.read_text() + "5 1 2 3\n")
    with pytest.raises(DataError, match=r"bounding_boxes\.txt, line 5: expected 5 fields"):
        load_cub(cub_root, "train", 16)


def test_filenames_must_stay_inside_the_images_folder(cub_root):
    _dump(cub_root / "birds" / "train" / "filenames.pickle", ["../../etc/passwd", "a/b", "c/d"])
    with pytest.raises(DataError, match="entry 0 .* must be a relative path"):
        load_cub(cub_root, "train", 16)


def test_bad_arguments(cub_root):
    with pytest.raises(ConfigError, match="allowed: train, test"):
        load_cub(cub_root, "valid", 16)
    with pytest.raises(ConfigError, match="image_size"):
        load_cub(cub_root, "train", 0)
